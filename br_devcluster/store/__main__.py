"""`python -m br_devcluster.store`: serve one store until SIGTERM/SIGINT; SIGUSR1 runs GC now."""
from __future__ import annotations

import logging
import signal
import sys
import threading

from br_devcluster.store.config import StoreConfig, parse_args
from br_devcluster.store.engine import EngineError
from br_devcluster.store.registration import FatalError
from br_devcluster.store.server import StoreServer

log = logging.getLogger("br_devcluster.store")


def setup_logging(config: StoreConfig) -> None:
    handler = logging.FileHandler(config.log_file) if config.log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def main() -> int:
    config = parse_args()
    setup_logging(config)
    stop = threading.Event()
    store = StoreServer(config, stop)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: store.trigger_gc())
    try:
        store.run()
    except (FatalError, EngineError, OSError) as exc:
        log.error("cannot run: %s", exc)
        print(f"br_devcluster.store: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
