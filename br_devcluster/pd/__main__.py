"""`python -m br_devcluster.pd`: serve pdpb.PD and devclusterpb.DevPD until SIGTERM/SIGINT."""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer

import grpc

from br_common.grpc_tls import server_credentials
from br_common.grpc_util import channel_options
from br_common.kvproto import devclusterpb_pb2_grpc, pdpb_pb2_grpc
from br_devcluster.pd.config import PDConfig, parse_args
from br_devcluster.pd import http_api
from br_devcluster.pd.gc import GCSafePoints
from br_devcluster.pd.ids import IdAllocator
from br_devcluster.pd.operators import Operators, StoreLink
from br_devcluster.pd.persist import StateFileError
from br_devcluster.pd.server import DevPDService, PDService
from br_devcluster.pd.state import ClusterState, Topology
from br_devcluster.pd.tso import TsoAllocator, offset_clock_ms
from br_devcluster.unimplemented import UnimplementedLogger

log = logging.getLogger("br_devcluster.pd")

# streams (Tso) hold a worker for their lifetime, and stores call back while PD waits on them
MAX_WORKERS = 64


def setup_logging(config: PDConfig) -> None:
    handler = logging.FileHandler(config.log_file) if config.log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def build(config: PDConfig) -> tuple[grpc.Server, StoreLink, ThreadingHTTPServer]:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    topology = Topology(config.initial_stores, config.initial_regions, config.max_replicas)
    state = ClusterState(config.data_dir, topology, IdAllocator(config.data_dir / "ids.json"))
    link = StoreLink(config.tls)
    operators = Operators(state, link)
    # no SO_REUSEPORT: a second PD on a taken port must fail, not share it
    options = [*channel_options(), ("grpc.so_reuseport", 0)]
    server = grpc.server(ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="pd-rpc"), options=options)
    url = f"{'https' if config.tls.cert else 'http'}://{config.host}:{config.port}"
    offset_ms = round(config.tso_clock_offset * 1000)
    tso = TsoAllocator(config.data_dir / "tso.json", offset_clock_ms(offset_ms))
    if offset_ms:
        log.warning("the TSO follows a clock %+.3fs off the wall clock (--tso-clock-offset)", offset_ms / 1000)
    http = http_api.serve(config.host, config.http_port, tso, config.tls)
    gc = GCSafePoints(config.data_dir / "gc.json", config.gc_life_time, clock=lambda: time.time() + offset_ms / 1000)
    pd = PDService(state, tso, gc, operators, [url, http_api.url_of(http, config.tls)])
    pdpb_pb2_grpc.add_PDServicer_to_server(pd, server)
    devclusterpb_pb2_grpc.add_DevPDServicer_to_server(DevPDService(state, operators), server)
    server.add_generic_rpc_handlers([UnimplementedLogger()])  # last: logs what no servicer answers
    if config.tls.cert:
        server.add_secure_port(f"{config.host}:{config.port}", server_credentials(config.tls))
    else:
        server.add_insecure_port(f"{config.host}:{config.port}")
    log.info("cluster %d, data dir %s, HTTP API on %s", state.cluster_id, config.data_dir,
             http_api.url_of(http, config.tls))
    return server, link, http


def main() -> int:
    config = parse_args()
    setup_logging(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        server, link, http = build(config)
    except (StateFileError, OSError, RuntimeError) as exc:
        log.error("cannot start: %s", exc)
        if config.log_file:  # otherwise the log line above already went to stderr
            print(f"br_devcluster.pd: error: {exc}", file=sys.stderr)
        return 1
    server.start()
    log.info("serving on %s:%d", config.host, config.port)
    stop.wait()
    log.info("stopping")
    server.stop(grace=0.2).wait()
    http.shutdown()
    link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
