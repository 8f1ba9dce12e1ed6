"""The bootstrap layout: K regions evenly over the first two key bytes, peers and leaders round-robin.

Split keys are TiKV engine keys (memcomparable-encoded, br_devcluster.key_layout), as a real
cluster's regions split by TiKV have them: transactional clients decode region bounds, and raw
keys fall on nearly the same side of them.
"""
from __future__ import annotations

from br_devcluster.key_layout import KEY_SPACE, split_keys
from br_devcluster.pd.models import Peer, Region
from br_devcluster.pd.regions import Allocator


def bootstrap_regions(store_ids: list[int], region_count: int, max_replicas: int,
                      alloc: Allocator) -> list[Region]:
    """Region i gets min(R, stores) peers on consecutive stores starting at store i mod S (its leader)."""
    if not store_ids:
        raise ValueError("cannot bootstrap without stores")
    if not 1 <= region_count <= KEY_SPACE:
        raise ValueError(f"region count must be between 1 and {KEY_SPACE}, got {region_count}")
    stores = sorted(store_ids)
    replicas = min(max_replicas, len(stores))
    bounds = [b""] + split_keys(region_count) + [b""]
    regions = []
    for i in range(region_count):
        first = alloc(1 + replicas)
        placed = [stores[(i + j) % len(stores)] for j in range(replicas)]
        regions.append(Region(id=first, start_key=bounds[i], end_key=bounds[i + 1],
                              peers=[Peer(id=first + 1 + j, store_id=s) for j, s in enumerate(placed)],
                              leader_store_id=placed[0]))
    return regions
