"""The split checker's choice of split key (pure) and the written-keys record it reads."""
from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from br_common.kvproto import metapb_pb2
from br_common.pd_client import RegionInfo
from br_common.txn_codec import append_ts, encode_bytes
from br_devcluster.store.cf_engine import CFEngine
from br_devcluster.store.split_check import SplitCheckLoop, half_split_key, plan_split, user_key_boundary
from br_devcluster.store.txn_reader import Modify
from br_devcluster.store.written_keys import BATCH_DETAIL, WrittenKeys


def versions(key: bytes, *ts: int) -> list[bytes]:
    return [append_ts(encode_bytes(key), t) for t in ts]


def entries(keys: list[bytes], size: int = 10) -> list[tuple[bytes, int]]:
    return [(key, size) for key in sorted(keys)]


def test_versioned_key_loses_its_ts() -> None:
    assert user_key_boundary(append_ts(encode_bytes(b"user"), 42)) == encode_bytes(b"user")


def test_lock_key_stays_as_it_is() -> None:
    assert user_key_boundary(encode_bytes(b"user")) == encode_bytes(b"user")


def test_raw_key_rounds_up_to_the_smallest_encoded_key_above_it() -> None:
    boundary = user_key_boundary(b"raw/key-0042")
    assert boundary == encode_bytes(b"raw/key-")
    assert b"raw/key-0042" < boundary < b"raw/key.", "keys sharing the first 8 bytes stay left of it"
    assert user_key_boundary(b"r050") == encode_bytes(b"r050")


def test_split_never_falls_between_versions_of_one_key() -> None:
    # a's many versions hold most of the data: the half point lies inside them, the split is at b
    keys = versions(b"a", *range(1, 20)) + versions(b"b", 5) + [encode_bytes(b"b")] + versions(b"c", 7)
    key = half_split_key(entries(keys), 10 * len(keys), b"", b"")
    assert key == encode_bytes(b"b")


def test_split_between_keys_keeps_write_default_and_lock_together() -> None:
    keys = [k for user in (b"k1", b"k2", b"k3", b"k4") for k in versions(user, 3, 9) + [encode_bytes(user)]]
    key = half_split_key(entries(keys), 10 * len(keys), b"", b"")
    assert key == encode_bytes(b"k3")
    assert all(user_key_boundary(k) < key for k in keys[:6]) and all(k >= key for k in keys[6:])


def test_raw_keys_split_near_the_half() -> None:
    keys = [b"r%03d" % i for i in range(100)]
    assert half_split_key(entries(keys), 1000, b"", b"") == encode_bytes(b"r050")


def test_raw_keys_sharing_their_first_8_bytes_cannot_be_split() -> None:
    keys = [b"same8byt%03d" % i for i in range(100)]
    assert half_split_key(entries(keys), 1000, b"", b"") is None


def test_split_key_is_below_the_region_end() -> None:
    keys = [b"a", b"b", b"c"]
    assert half_split_key(entries(keys), 30, b"", encode_bytes(b"b")) is None


def test_a_region_of_one_user_key_does_not_split() -> None:
    keys = versions(b"only", *range(1, 50))
    assert half_split_key(entries(keys), 490, b"", b"") is None


def test_split_key_is_above_the_region_start() -> None:
    keys = [b"m1", b"m2"]
    assert half_split_key(entries(keys), 20, b"m", b"") == encode_bytes(b"m2")


def test_small_region_is_not_split_but_measured() -> None:
    data = entries([b"a", b"b", b"c"], size=100)
    assert plan_split(lambda: iter(data), 300, (b"", b"")) == (300, None)
    assert plan_split(lambda: iter(data), 299, (b"", b"")) == (300, encode_bytes(b"b"))


def test_written_keys_sum_bytes_per_range() -> None:
    record = WrittenKeys()
    assert record.take().bytes_in(b"", b"") == math.inf  # a fresh store knows nothing of its data
    record.record([Modify("default", b"a", b"12345"), Modify("write", b"m", None)])
    taken = record.take()
    assert taken.bytes_in(b"", b"b") == 6
    assert taken.bytes_in(b"b", b"") == 1
    assert taken.bytes_in(b"x", b"") == 0
    assert record.take().bytes_in(b"", b"") == 0


def test_written_keys_past_the_limit_or_after_an_ingest_mean_everything() -> None:
    record = WrittenKeys(limit=2)
    record.take()
    record.record([Modify("default", bytes([i]), b"") for i in range(3)])
    assert record.take().bytes_in(b"x", b"y") == math.inf
    record.record_everything()
    assert record.take().bytes_in(b"x", b"y") == math.inf


class FakePD:
    """One region ["", "") led by store 1 (or `leader`); records the split keys asked for."""

    def __init__(self, leader: int = 1) -> None:
        self.leader = leader
        self.asked: list[bytes] = []

    def scan_regions(self) -> list[RegionInfo]:
        region = metapb_pb2.Region(id=7, peers=[metapb_pb2.Peer(id=8, store_id=self.leader)])
        return [RegionInfo(region, region.peers[0])]

    def split_regions(self, keys: list[bytes]) -> list[int]:
        self.asked.extend(keys)
        return [100]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[CFEngine]:
    opened = CFEngine(tmp_path / "db")
    yield opened
    opened.close()


def put_txn(engine: CFEngine, key: bytes, ts: int, value: bytes) -> None:
    engine.apply([Modify("default", append_ts(encode_bytes(key), ts), value)])


def test_loop_splits_a_led_region_above_the_size_at_a_user_key(engine: CFEngine) -> None:
    for i in range(10):
        put_txn(engine, b"k%d" % i, 5, b"v" * 500)
    pd = FakePD()
    loop = SplitCheckLoop(engine, pd, store_id=1, split_size=2000)
    assert loop.run_once() == 1
    assert pd.asked == [encode_bytes(b"k5")]


def test_loop_skips_regions_it_does_not_lead_or_that_did_not_grow(engine: CFEngine) -> None:
    put_txn(engine, b"a", 5, b"v" * 100)
    put_txn(engine, b"b", 5, b"v" * 100)
    pd = FakePD(leader=2)
    assert SplitCheckLoop(engine, pd, store_id=1, split_size=100).run_once() == 0
    pd.leader = 1
    small = SplitCheckLoop(engine, pd, store_id=1, split_size=1000)
    assert small.run_once() == 0  # measured: below the split size
    engine.apply([Modify("lock", encode_bytes(b"zz"), b"")])  # grows a little: still below
    assert small.run_once() == 0 and pd.asked == []


def test_keys_above_any_prefix_split_in_an_unbounded_region() -> None:
    keys = [b"\xff\xff%02d" % i for i in range(10)]
    assert half_split_key(entries(keys), 100, b"", b"") == encode_bytes(b"\xff\xff05")


def test_written_keys_count_a_large_batch_once_at_its_smallest_key() -> None:
    """A command's batch stays in one region: its bytes go where its smallest key is."""
    record = WrittenKeys(limit=2)
    record.take()
    batch = [Modify("default", b"m%03d" % i, b"xy") for i in range(BATCH_DETAIL + 1, 0, -1)]
    record.record(batch)
    taken = record.take()
    assert taken.bytes_in(b"m001", b"m002") == sum(len(m.key) + 2 for m in batch)
    assert taken.bytes_in(b"m002", b"") == 0
