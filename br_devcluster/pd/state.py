"""Cluster metadata behind one lock: cluster id, stores, regions, bootstrap; persisted to cluster.json.

Every method is short and never calls out of the process, so holding the lock is cheap and a
store calling back into PD (CommitPeerChange) can never deadlock against it.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from br_devcluster.pd import layout, persist, scatter
from br_devcluster.pd.ids import IdAllocator
from br_devcluster.pd.models import ClusterFile, Peer, Region, Store
from br_devcluster.pd.regions import RegionMap, SplitError

log = logging.getLogger(__name__)


class StateError(ValueError):
    """A request PD refuses (unknown store/region, stale epoch, bad peer set...)."""


@dataclass(frozen=True)
class Topology:
    initial_stores: int = 1
    initial_regions: int = 1
    max_replicas: int = 1


def new_cluster_id() -> int:
    """Random, non-zero, below 2**63 (PD's ids fit an int64)."""
    return secrets.randbelow(2**63 - 1) + 1


class ClusterState:
    def __init__(self, data_dir: Path, topology: Topology, ids: IdAllocator) -> None:
        self._path = data_dir / "cluster.json"
        self._topology = topology
        self._ids = ids
        self._lock = threading.Lock()
        saved = persist.read(self._path, ClusterFile)
        if saved is None:
            saved = ClusterFile(cluster_id=new_cluster_id(), member_id=new_cluster_id())
            persist.write_atomic(self._path, saved)
        self.cluster_id = saved.cluster_id
        self.member_id = saved.member_id
        self._bootstrapped = saved.bootstrapped
        self._stores = {s.id: s for s in saved.stores}
        self._regions = RegionMap(saved.regions)
        with self._lock:
            self._maybe_bootstrap()  # in case a PD died between registering stores and bootstrapping

    @property
    def max_replicas(self) -> int:
        return self._topology.max_replicas

    @property
    def bootstrapped(self) -> bool:
        return self._bootstrapped

    # --- ids ---------------------------------------------------------------------------------
    def alloc_ids(self, count: int) -> int:
        return self._ids.alloc(count)

    # --- stores ------------------------------------------------------------------------------
    def put_store(self, address: str, store_id: int = 0) -> int:
        """Register a store or record its heartbeat; a known id may come back at a new address."""
        with self._lock:
            store = self._find_store(address, store_id)
            now_ns = time.time_ns()
            if store is None:
                store = Store(id=self._ids.alloc(1), address=address, start_timestamp=now_ns // 10**9)
                log.info("store %d registered at %s", store.id, address)
            is_new_or_moved = self._stores.get(store.id, None) is None or store.address != address
            self._stores[store.id] = store.model_copy(update={"address": address, "last_heartbeat": now_ns})
            if is_new_or_moved and not self._maybe_bootstrap():  # plain heartbeats are not worth an fsync
                self._save()
            return store.id

    def _find_store(self, address: str, store_id: int) -> Store | None:
        by_address = next((s for s in self._stores.values() if s.address == address), None)
        if store_id == 0:
            return by_address
        if store_id not in self._stores:
            raise StateError(f"store id {store_id} is unknown to cluster {self.cluster_id}")
        if by_address is not None and by_address.id != store_id:
            raise StateError(f"address {address} belongs to store {by_address.id}, not {store_id}")
        return self._stores[store_id]

    def stores(self) -> list[Store]:
        with self._lock:
            return sorted(self._stores.values(), key=lambda s: s.id)

    def store(self, store_id: int) -> Store | None:
        with self._lock:
            return self._stores.get(store_id)

    # --- regions -----------------------------------------------------------------------------
    def region_by_key(self, key: bytes) -> Region | None:
        with self._lock:
            return self._regions.locate(key)

    def region_before(self, key: bytes) -> Region | None:
        with self._lock:
            return self._regions.previous(key)

    def region_by_id(self, region_id: int) -> Region | None:
        with self._lock:
            return self._regions.by_id(region_id)

    def scan_regions(self, start_key: bytes, end_key: bytes, limit: int) -> list[Region]:
        with self._lock:
            return self._regions.scan(start_key, end_key, limit)

    def split(self, keys: list[bytes]) -> list[int]:
        """Split at every key that is not a boundary yet; returns the new (right-hand) region ids."""
        with self._lock:
            self._require_bootstrapped()
            new_ids = []
            for key in sorted(set(keys)):
                if not self._regions.is_boundary(key):
                    new_ids.append(self._regions.split(key, self._ids.alloc)[1].id)
            if new_ids:
                self._save()
            return new_ids

    def split_one(self, key: bytes) -> Region:
        """Split at key (an error if it is a boundary already); returns the region starting at key."""
        with self._lock:
            self._require_bootstrapped()
            try:
                right = self._regions.split(key, self._ids.alloc)[1]
            except SplitError as exc:
                raise StateError(str(exc)) from None
            self._save()
            return right

    def commit_peer_change(self, region_id: int, conf_ver: int, version: int, peers: list[Peer],
                           leader_store_id: int) -> Region:
        """Atomically replace peers and leader if the caller saw the current epoch."""
        with self._lock:
            region = self._regions.by_id(region_id)
            if region is None:
                raise StateError(f"region {region_id} not found")
            if (conf_ver, version) != (region.conf_ver, region.version):
                raise StateError(f"region {region_id} epoch changed: request has conf_ver={conf_ver} "
                                 f"version={version}, current conf_ver={region.conf_ver} version={region.version}")
            self._check_peers(region_id, peers, leader_store_id)
            changed = {(p.id, p.store_id) for p in peers} != {(p.id, p.store_id) for p in region.peers}
            updated = region.model_copy(update={
                "peers": peers, "leader_store_id": leader_store_id,
                "conf_ver": region.conf_ver + 1 if changed else region.conf_ver})
            self._regions.replace(updated)
            self._save()
            return updated

    def _check_peers(self, region_id: int, peers: list[Peer], leader_store_id: int) -> None:
        stores = [p.store_id for p in peers]
        if not peers:
            raise StateError(f"region {region_id}: the peer set must not be empty")
        if len(set(stores)) != len(stores) or len({p.id for p in peers}) != len(peers):
            raise StateError(f"region {region_id}: peers must have distinct ids and stores")
        if any(p.id == 0 for p in peers) or any(s not in self._stores for s in stores):
            raise StateError(f"region {region_id}: peers need non-zero ids on known stores")
        if leader_store_id not in stores:
            raise StateError(f"region {region_id}: leader store {leader_store_id} holds no peer")

    def plan_scatter(self, region_ids: list[int]) -> tuple[list[scatter.ScatterPlan], list[int]]:
        """Plans for the known regions, and the ids that are unknown."""
        with self._lock:
            self._require_bootstrapped()
            targets = [self._regions.by_id(i) for i in dict.fromkeys(region_ids)]
            unknown = [i for i, r in zip(dict.fromkeys(region_ids), targets) if r is None]
            known = [r for r in targets if r is not None]
            plans = scatter.plan_scatter(self._regions.all(), known, sorted(self._stores), self._ids.alloc)
            return plans, unknown

    # --- bootstrap and persistence ------------------------------------------------------------
    def _require_bootstrapped(self) -> None:
        if not self._bootstrapped:
            raise NotBootstrapped(f"cluster {self.cluster_id} is not bootstrapped "
                                  f"({len(self._stores)} of {self._topology.initial_stores} stores registered)")

    def _maybe_bootstrap(self) -> bool:
        """Bootstrap (and save) once enough stores registered; True when it did."""
        if self._bootstrapped or len(self._stores) < self._topology.initial_stores:
            return False
        regions = layout.bootstrap_regions(sorted(self._stores), self._topology.initial_regions,
                                           self._topology.max_replicas, self._ids.alloc)
        self._regions = RegionMap(regions)
        self._bootstrapped = True
        self._save()
        log.info("bootstrapped %d regions over stores %s", len(regions), sorted(self._stores))
        return True

    def _save(self) -> None:
        persist.write_atomic(self._path, ClusterFile(
            cluster_id=self.cluster_id, member_id=self.member_id, bootstrapped=self._bootstrapped,
            stores=sorted(self._stores.values(), key=lambda s: s.id), regions=self._regions.all()))


class NotBootstrapped(StateError):
    """Region operations before --initial-stores stores registered."""
