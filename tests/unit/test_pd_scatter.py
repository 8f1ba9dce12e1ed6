"""Scatter planning: peers and leaders evened out over stores, balanced regions left alone."""
import itertools
from collections import Counter

from br_devcluster.pd.models import Peer, Region
from br_devcluster.pd.scatter import plan_scatter


def alloc_from(start: int):
    ids = itertools.count(start)
    return lambda count: next(ids)


def region(region_id: int, stores: list[int], leader: int) -> Region:
    return Region(id=region_id, start_key=bytes([region_id]), end_key=bytes([region_id + 1]),
                  peers=[Peer(id=region_id * 10 + i, store_id=s) for i, s in enumerate(stores)], leader_store_id=leader)


def apply(regions: list[Region], plans) -> dict[int, tuple[list[int], int]]:
    layout = {r.id: (r.store_ids(), r.leader_store_id) for r in regions}
    for plan in plans:
        stores, _ = layout[plan.region_id]
        for move in plan.moves:
            stores = [move.to_store_id if s == move.from_store_id else s for s in stores]
        layout[plan.region_id] = (stores, plan.leader_store_id)
    return layout


def test_single_replica_regions_on_one_store_spread_over_all():
    regions = [region(i, [1], 1) for i in range(1, 7)]
    plans = plan_scatter(regions, regions, [1, 2, 3], alloc_from(1000))
    layout = apply(regions, plans)
    assert Counter(s for stores, _ in layout.values() for s in stores) == {1: 2, 2: 2, 3: 2}
    assert Counter(leader for _, leader in layout.values()) == {1: 2, 2: 2, 3: 2}
    new_ids = [m.new_peer_id for p in plans for m in p.moves]
    assert len(new_ids) == 4 and len(set(new_ids)) == 4


def test_three_replicas_on_three_stores_only_balance_leaders():
    regions = [region(i, [1, 2, 3], 1) for i in range(1, 4)]
    plans = plan_scatter(regions, regions, [1, 2, 3], alloc_from(1000))
    assert all(not p.moves for p in plans)
    assert sorted(p.leader_store_id for p in plans) == [1, 2, 3]


def test_balanced_region_is_a_noop():
    regions = [region(1, [1], 1), region(2, [2], 2)]
    plans = plan_scatter(regions, regions, [1, 2], alloc_from(1000))
    assert all(p.is_noop(r) for p, r in zip(plans, regions))


def test_counts_include_regions_not_being_scattered():
    others = [region(i, [1, 2], 1) for i in range(1, 5)]  # stores 1 and 2 are loaded
    target = region(9, [1, 2], 2)
    plans = plan_scatter(others + [target], [target], [1, 2, 3, 4], alloc_from(1000))
    stores, leader = apply([target], plans)[9]
    assert sorted(stores) == [3, 4] and leader in (3, 4)
