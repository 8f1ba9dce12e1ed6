"""Assembling and running one store: gRPC services, registration, heartbeat, GC, shutdown."""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import grpc

from br_common.grpc_tls import server_credentials
from br_common.grpc_util import channel_options
from br_common.kvproto import (
    brpb_pb2_grpc,
    devclusterpb_pb2_grpc,
    import_sstpb_pb2_grpc,
    tikvpb_pb2_grpc,
)
from br_common.pd_client import PDClient, PDError
from br_devcluster.store.backup_service import BackupService
from br_devcluster.store.config import StoreConfig
from br_devcluster.store.dev_service import DevStoreService
from br_devcluster.store.engine import open_engine
from br_devcluster.store.gc import GCLoop
from br_devcluster.store.import_service import ImportService
from br_devcluster.store.pd_dev import DevPDClient
from br_devcluster.store.registration import (
    FatalError,
    Heartbeat,
    Identity,
    check_identity,
    connect_pd,
    load_identity,
    register,
    save_identity,
)
from br_devcluster.store.replication import PeerClients
from br_devcluster.store.split_check import SplitCheckLoop
from br_devcluster.store.staging import Staging
from br_devcluster.store.state import StoreState
from br_devcluster.store.tikv_service import TikvService

log = logging.getLogger("br_devcluster.store")

WORKERS = 16
STOP_GRACE_SECONDS = 1.0


class StoreServer:
    """Lifecycle: run() blocks until `stop` is set, then shuts everything down in order."""

    def __init__(self, config: StoreConfig, stop: threading.Event) -> None:
        self.config = config
        self.stop = stop
        self.gc: GCLoop | None = None
        self.split_check: SplitCheckLoop | None = None

    def run(self) -> None:
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        identity = load_identity(config.identity_file)
        pd = connect_pd(config.pd, self.stop, config.tls)
        if pd is None:
            return
        with ExitStack() as cleanup:  # unwinds in reverse: server, GC, clients, then RocksDB
            cleanup.callback(pd.close)
            check_identity(identity, pd.cluster_id)
            dev_pd = DevPDClient(pd.address, pd.cluster_id, config.tls)
            cleanup.callback(dev_pd.close)
            engine = open_engine(config.db_dir, config.layout_file)
            cleanup.callback(engine.close)
            state = StoreState(config=config, engine=engine, pd=pd, dev_pd=dev_pd, peers=PeerClients(pd))
            cleanup.callback(state.peers.close)
            state.concurrency.update_max_ts(_latest_ts(pd))
            cleanup.callback(self._stop_loops)
            staging = Staging(config.import_dir)
            staging.clean_leftovers()
            staging.remove_expired(config.staged_ttl)  # what a stopped or crashed store left behind
            server = self._grpc_server(state, staging)
            server.start()  # before registering: PD may call back as soon as it bootstraps
            cleanup.callback(lambda: server.stop(grace=STOP_GRACE_SECONDS).wait())
            cleanup.callback(log.info, "stopping")
            log.info("serving on %s (cluster %d)", config.address, pd.cluster_id)
            self._serve(state, identity, staging)
        log.info("stopped")

    def _stop_loops(self) -> None:
        for loop in (self.gc, self.split_check):
            if loop is not None:
                loop.stop()

    def _serve(self, state: StoreState, identity: Identity | None, staging: Staging) -> None:
        store_id = register(state.dev_pd, identity.store_id if identity else 0, self.config.address, self.stop)
        if store_id is None:
            return
        save_identity(self.config.identity_file, Identity(cluster_id=state.cluster_id, store_id=store_id))
        state.store_id = store_id
        log.info("registered as store %d", store_id)
        heartbeat = Heartbeat(state.dev_pd, store_id, self.config.address, self.stop)
        heartbeat.start()
        self.gc = GCLoop(state.engine, state.pd, self.config.gc_interval, staging, self.config.staged_ttl,
                         store_id)
        self.gc.start()
        self.split_check = SplitCheckLoop(state.engine, state.pd, store_id, self.config.region_split_size,
                                          self.config.split_check_interval)
        self.split_check.start()
        self.stop.wait()
        heartbeat.join()

    def trigger_gc(self) -> None:
        if self.gc is not None:
            self.gc.trigger()

    def _grpc_server(self, state: StoreState, staging: Staging) -> grpc.Server:
        # no SO_REUSEPORT: a second store on a taken port must fail, not share it
        options = [*channel_options(), ("grpc.so_reuseport", 0)]
        server = grpc.server(ThreadPoolExecutor(WORKERS, thread_name_prefix="store-rpc"), options=options)
        tikvpb_pb2_grpc.add_TikvServicer_to_server(TikvService(state), server)
        brpb_pb2_grpc.add_BackupServicer_to_server(BackupService(state), server)
        import_sstpb_pb2_grpc.add_ImportSSTServicer_to_server(ImportService(state, staging), server)
        devclusterpb_pb2_grpc.add_DevStoreServicer_to_server(DevStoreService(state, staging), server)
        try:
            if self.config.tls.cert:
                server.add_secure_port(self.config.address, server_credentials(self.config.tls))
            else:
                server.add_insecure_port(self.config.address)
        except RuntimeError as exc:
            raise FatalError(f"cannot listen on {self.config.address}: {exc}") from None
        return server


def _latest_ts(pd: PDClient) -> int:
    """TiKV starts its ConcurrencyManager at a PD timestamp: no read served before this start
    (by another leader of its regions) can be above it."""
    try:
        return pd.tso()
    except PDError as exc:
        raise FatalError(f"cannot get a timestamp from PD: {exc}") from None
