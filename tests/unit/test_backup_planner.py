"""Planner: grouping by leader, bounded size, clipping, leaderless regions."""
from __future__ import annotations

from br_common.backupmeta.kind import RULES, BackupKind
from br_common.fleet.keyranges import tiling_problem
from br_common.fleet.messages import KeyRange
from br_common.kvproto import metapb_pb2
from br_common.pd_client import RegionInfo
from br_common.txn_codec import encode_bytes
from br_coordinator.backup_plan import plan


def _regions(bounds: list[bytes], leaders: list[int]) -> list[RegionInfo]:
    edges = [b""] + bounds + [b""]
    out = []
    for i, leader in enumerate(leaders):
        region = metapb_pb2.Region(id=i + 1, start_key=edges[i], end_key=edges[i + 1])
        out.append(RegionInfo(region, metapb_pb2.Peer(store_id=leader) if leader else None))
    return out


def test_contiguous_regions_of_one_leader_become_one_task() -> None:
    tasks = plan(_regions([b"b", b"c", b"d"], [1, 1, 2, 1]), KeyRange())
    assert [(t.store_id, t.range, t.regions) for t in tasks] == [
        (1, KeyRange(start=b"", end=b"c"), 2), (2, KeyRange(start=b"c", end=b"d"), 1),
        (1, KeyRange(start=b"d", end=b""), 1)]
    assert tiling_problem(KeyRange(), [t.range for t in tasks]) == ""


def test_tasks_are_bounded_in_regions() -> None:
    bounds = [bytes([i]) for i in range(1, 20)]
    tasks = plan(_regions(bounds, [3] * 20), KeyRange(), max_regions=8)
    assert [t.regions for t in tasks] == [8, 8, 4]
    assert tiling_problem(KeyRange(), [t.range for t in tasks]) == ""


def test_plan_is_clipped_to_the_range() -> None:
    tasks = plan(_regions([b"b", b"d"], [1, 2, 3]), KeyRange(start=b"a", end=b"c"))
    assert [(t.store_id, t.range) for t in tasks] == [(1, KeyRange(start=b"a", end=b"b")),
                                                      (2, KeyRange(start=b"b", end=b"c"))]


def test_leaderless_regions_are_never_merged() -> None:
    tasks = plan(_regions([b"b"], [0, 0]), KeyRange())
    assert [(t.store_id, t.regions) for t in tasks] == [(0, 1), (0, 1)]


def test_txn_plans_are_in_raw_user_key_space() -> None:
    """Regions hold encoded keys; a txn backup's tasks cut the raw range at the raw keys they hold."""
    regions = _regions([encode_bytes(b"g"), encode_bytes(b"p")], [1, 2, 2])
    tasks = plan(regions, KeyRange(start=b"c", end=b"r"), kind_rules=RULES[BackupKind.TXN])
    assert [(t.store_id, t.range) for t in tasks] == [(1, KeyRange(start=b"c", end=b"g")),
                                                     (2, KeyRange(start=b"g", end=b"r"))]
    assert RULES[BackupKind.TXN].pd_bounds(b"c", b"") == (encode_bytes(b"c"), b"")
