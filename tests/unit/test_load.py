"""Key generator, size parsing and the parallel writer loop of `br-devcluster load`."""
import threading

import pytest

from br_devcluster.load import KEY_SIZE, Distribution, KeyGen, LoadSpec, parse_size, run_load


@pytest.mark.parametrize("text,expected", [("4096", 4096), ("1GB", 10**9), ("1GiB", 2**30), ("512MiB", 512 * 2**20),
                                           ("64KiB", 65536), (" 2 MB ", 2 * 10**6)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "1XB", "-5", "GB", "1.5.2MB"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


def test_from_size_counts_keys_and_values():
    spec = LoadSpec.from_size(10_400, value_size=1024 - KEY_SIZE)
    assert spec.keys == 10 and spec.total_bytes == 10_240
    with pytest.raises(ValueError, match="smaller than one pair"):
        LoadSpec.from_size(100, value_size=1024)


def test_spec_validates():
    with pytest.raises(ValueError):
        LoadSpec(keys=0, value_size=10)
    with pytest.raises(ValueError):
        LoadSpec(keys=10, value_size=-1)


def _region_of(key: bytes, regions: int) -> int:
    """Which of PD's evenly spaced bootstrap regions ((i*65536//K) split keys) holds key."""
    splits = [(i * 65536 // regions).to_bytes(2, "big") for i in range(1, regions)]
    return sum(1 for s in splits if key >= s)


@pytest.mark.parametrize("dist", list(Distribution))
def test_keys_unique_sized_and_spread_over_regions(dist):
    gen = KeyGen(LoadSpec(keys=8000, value_size=10, distribution=dist, seed=7))
    keys = [gen.key(i) for i in range(8000)]
    assert all(len(k) == KEY_SIZE for k in keys)
    assert len(set(keys)) == 8000
    counts = [0] * 8
    for k in keys:
        counts[_region_of(k, 8)] += 1
    assert min(counts) > 8000 / 8 * 0.8, counts  # every region gets its share


def test_sequential_keys_ascend():
    gen = KeyGen(LoadSpec(keys=1000, value_size=1, distribution="sequential"))
    keys = [gen.key(i) for i in range(1000)]
    assert keys == sorted(keys)


def test_values_deterministic_per_seed():
    a = KeyGen(LoadSpec(keys=10, value_size=100, seed=1))
    b = KeyGen(LoadSpec(keys=10, value_size=100, seed=1))
    c = KeyGen(LoadSpec(keys=10, value_size=100, seed=2))
    assert a.pairs(0, 10) == b.pairs(0, 10)
    assert a.value(3) != c.value(3) and a.key(3) != c.key(3)
    assert len(a.value(0)) == 100 and a.value(0) != a.value(1)


def test_run_load_writes_every_pair_once():
    gen = KeyGen(LoadSpec(keys=1000, value_size=50))
    seen, lock, progress = [], threading.Lock(), []

    def put(pairs):
        with lock:
            seen.extend(pairs)

    run_load(gen, put, batch_bytes=660, writers=3, progress=progress.append)
    assert sorted(seen) == sorted(gen.pairs(0, 1000))
    assert sum(progress) == gen.spec.total_bytes


def test_run_load_raises_first_error():
    gen = KeyGen(LoadSpec(keys=1000, value_size=50))
    calls = []

    def put(pairs):
        calls.append(1)
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError, match="store down"):
        run_load(gen, put, batch_bytes=660, writers=2)
    assert len(calls) < 100  # stopped early instead of failing every batch


def test_model_checksum_matches_pairs():
    from br_common.checksum import Checksum
    gen = KeyGen(LoadSpec(keys=300, value_size=20, seed=3))
    assert gen.checksum() == Checksum().add_pairs(gen.pairs(0, 300))
