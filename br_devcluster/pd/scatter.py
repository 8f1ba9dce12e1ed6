"""Scatter planning (pure): where each region's peers and leader should go to even out the stores.

Greedy over the requested regions in order, with cluster-wide per-store counts: each region
takes the least-loaded stores for its peers (keeping its current stores on ties, so balanced
regions do not move), then the least-loaded of those for its leader.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from br_devcluster.pd.models import Region
from br_devcluster.pd.regions import Allocator


@dataclass(frozen=True)
class Move:
    from_store_id: int
    to_store_id: int
    new_peer_id: int


@dataclass(frozen=True)
class ScatterPlan:
    region_id: int
    moves: list[Move] = field(default_factory=list)
    leader_store_id: int = 0  # where the leader should end up

    def is_noop(self, region: Region) -> bool:
        return not self.moves and region.leader_store_id == self.leader_store_id


def plan_scatter(all_regions: Iterable[Region], targets: list[Region], store_ids: list[int],
                 alloc: Allocator) -> list[ScatterPlan]:
    regions = list(all_regions)
    peers = Counter({s: 0 for s in store_ids})
    peers.update(p.store_id for r in regions for p in r.peers)
    leaders = Counter({s: 0 for s in store_ids})
    leaders.update(r.leader_store_id for r in regions)
    return [_plan_one(region, peers, leaders, sorted(store_ids), alloc) for region in targets]


def _plan_one(region: Region, peers: Counter, leaders: Counter, stores: list[int],
              alloc: Allocator) -> ScatterPlan:
    current = region.store_ids()
    peers.subtract(current)
    leaders[region.leader_store_id] -= 1
    chosen = sorted(stores, key=lambda s: (peers[s], s not in current, s))[:len(current)]
    peers.update(chosen)
    leader = min(chosen, key=lambda s: (leaders[s], s != region.leader_store_id, s))
    leaders[leader] += 1
    removed = [s for s in current if s not in chosen]
    added = [s for s in chosen if s not in current]
    moves = [Move(src, dst, alloc(1)) for src, dst in zip(removed, added)]
    return ScatterPlan(region.id, moves, leader)
