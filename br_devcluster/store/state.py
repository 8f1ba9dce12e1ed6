"""What every service of one store shares: engine, PD clients, the write lock, the store id."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import grpc

from br_devcluster.snapshot_kv import READ_TS_METADATA
from br_common.pd_client import PDClient
from br_devcluster.store import mvcc
from br_devcluster.store.concurrency import ConcurrencyManager
from br_devcluster.store.config import StoreConfig
from br_devcluster.store.engine import Engine
from br_devcluster.store.errors import InvalidArgument
from br_devcluster.store.pd_dev import DevPDClient
from br_devcluster.store.ratelimit import RateLimiter
from br_devcluster.store.regions import RegionChecker
from br_devcluster.store.replication import PeerClients


@dataclass
class StoreState:
    config: StoreConfig
    engine: Engine
    pd: PDClient
    dev_pd: DevPDClient
    peers: PeerClients
    store_id: int = 0  # 0 until PD registered the store
    # writes take their commit ts and replicate under it; reads pass through it (a barrier)
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    download_limiter: RateLimiter = field(default_factory=RateLimiter)
    concurrency: ConcurrencyManager = field(default_factory=ConcurrencyManager)  # max ts (async commit)
    checker: RegionChecker = field(init=False)

    def __post_init__(self) -> None:
        self.checker = RegionChecker(self.pd, lambda: self.store_id)

    @property
    def cluster_id(self) -> int:
        return self.pd.cluster_id


def read_ts(context: grpc.ServicerContext) -> int:
    """The read ts from the request metadata; absent means the latest."""
    for key, value in context.invocation_metadata() or ():
        if key == READ_TS_METADATA:
            try:
                ts = int(value)
            except (TypeError, ValueError):
                raise InvalidArgument(f"{READ_TS_METADATA} must be an unsigned integer, got {value!r}") from None
            if not 0 < ts <= mvcc.TS_MAX:
                raise InvalidArgument(f"{READ_TS_METADATA} out of range: {value!r}")
            return ts
    return mvcc.TS_MAX
