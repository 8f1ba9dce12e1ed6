"""Region map: locate, scan, split bookkeeping; bootstrap layout."""
import itertools

import pytest

from br_common.txn_codec import encode_bytes
from br_devcluster.pd.layout import bootstrap_regions, split_keys

E40, E80, EC0 = (encode_bytes(k) for k in (b"\x40\x00", b"\x80\x00", b"\xc0\x00"))
from br_devcluster.pd.models import Peer, Region
from br_devcluster.pd.regions import RegionMap, SplitError


def counter(start: int = 100):
    ids = itertools.count(start)

    def alloc(count: int) -> int:
        first = next(ids)
        for _ in range(count - 1):
            next(ids)
        return first
    return alloc


def one_region() -> RegionMap:
    return RegionMap([Region(id=1, start_key=b"", end_key=b"", peers=[Peer(id=2, store_id=7), Peer(id=3, store_id=8)],
                             leader_store_id=8)])


def test_split_left_keeps_id_right_gets_new_ids_and_both_bump_version():
    regions = one_region()
    left, right = regions.split(b"m", counter(100))
    assert (left.id, left.start_key, left.end_key, left.version, left.conf_ver) == (1, b"", b"m", 2, 1)
    assert (right.id, right.start_key, right.end_key, right.version) == (100, b"m", b"", 2)
    assert [(p.id, p.store_id) for p in right.peers] == [(101, 7), (102, 8)]
    assert right.leader_store_id == 8 and left.peers == one_region().by_id(1).peers


def test_split_refuses_empty_key_and_boundaries():
    regions = one_region()
    regions.split(b"m", counter())
    with pytest.raises(SplitError, match="empty"):
        regions.split(b"", counter())
    with pytest.raises(SplitError, match="boundary"):
        regions.split(b"m", counter())


def test_locate_and_scan_after_splits():
    regions = one_region()
    alloc = counter()
    for key in (b"c", b"k", b"t"):
        regions.split(key, alloc)
    assert regions.locate(b"").start_key == b""
    assert regions.locate(b"k").start_key == b"k"
    assert regions.locate(b"kz").start_key == b"k"
    assert regions.locate(b"zzz").end_key == b""
    starts = [r.start_key for r in regions.scan(b"d", b"t")]
    assert starts == [b"c", b"k"]  # [t, ...) starts at end_key: not overlapping
    assert [r.start_key for r in regions.scan(b"", b"", 2)] == [b"", b"c"]
    assert [r.start_key for r in regions.scan(b"k")] == [b"k", b"t"]


def test_old_region_objects_are_not_mutated_by_split():
    regions = one_region()
    before = regions.by_id(1)
    regions.split(b"m", counter())
    assert before.end_key == b"" and before.version == 1


def test_split_keys_are_even_over_two_bytes():
    assert split_keys(1) == []
    assert split_keys(4) == [encode_bytes(k) for k in (b"\x40\x00", b"\x80\x00", b"\xc0\x00")]  # engine keys
    assert len(set(split_keys(65536))) == 65535


def test_bootstrap_layout_spreads_peers_and_leaders_round_robin():
    regions = bootstrap_regions([3, 1, 2], 4, 2, counter(10))
    assert [(r.start_key, r.end_key) for r in regions] == [
        (b"", E40), (E40, E80), (E80, EC0), (EC0, b"")]
    assert [r.leader_store_id for r in regions] == [1, 2, 3, 1]
    assert [r.store_ids() for r in regions] == [[1, 2], [2, 3], [3, 1], [1, 2]]
    assert all((r.conf_ver, r.version) == (1, 1) for r in regions)
    ids = [r.id for r in regions] + [p.id for r in regions for p in r.peers]
    assert len(ids) == len(set(ids))


def test_bootstrap_caps_replicas_at_store_count():
    regions = bootstrap_regions([5], 2, 3, counter())
    assert [r.store_ids() for r in regions] == [[5], [5]]


def test_previous_is_the_region_before_the_one_holding_the_key():
    regions = one_region()
    alloc = counter()
    for key in (b"c", b"k"):
        regions.split(key, alloc)
    assert regions.previous(b"k").start_key == b"c"
    assert regions.previous(b"zz").start_key == b"c"
    assert regions.previous(b"c\x00").start_key == b""
    assert regions.previous(b"b") is None  # the first region has none
