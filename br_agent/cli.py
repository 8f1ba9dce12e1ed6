"""`br-agent`: the worker beside one store (see br_agent.agent)."""
from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from br_agent.agent import AgentConfig, AgentError, run
from br_common.fleet.config import FleetSettings, fleet_version

LOG_FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="br-agent",
        description="Run the br-fleet agent beside one TiKV store: back up (and restore) that store's "
                    "ranges for `br`, uploading with this host's own S3 credentials.",
        epilog="Example: br-agent --store 10.0.1.2:20160 --pd 10.0.1.1:2379 --broker redis://10.0.1.1:6379/0")
    parser.add_argument("--store", required=True, metavar="HOST:PORT",
                        help="the store's address, as registered in PD")
    parser.add_argument("-u", "--pd", required=True, metavar="ADDR", help="PD address")
    parser.add_argument("--broker", default=None, metavar="URL",
                        help="Redis URL of the fleet (env BR_BROKER; default redis://127.0.0.1:6379/0)")
    parser.add_argument("--staging-dir", default=None, metavar="DIR",
                        help="local directory the store writes SST files to before upload; also holds the "
                             "agent's sealing key (default: $TMPDIR/br-agent-HOST-PORT)")
    parser.add_argument("--concurrency", type=int, default=8, help="tasks run at once (default 8)")
    parser.add_argument("--allow-destination", action="append", default=[], metavar="URL",
                        help="only write to storage under this URL prefix (repeatable; default: anywhere "
                             "this host's credentials reach)")
    parser.add_argument("--store-wait", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for the store to register with PD (default 60)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warn", "error"],
                        help="log level (default info)")
    parser.add_argument("--log-file", default=None, help="also write the log to this file")
    parser.add_argument("-V", "--version", action="version", version=f"br-agent (br-fleet) {fleet_version()}")
    return parser


def _setup_logging(level: str, log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=level.upper().replace("WARN", "WARNING"), format=LOG_FORMAT, handlers=handlers,
                        force=True)
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _setup_logging(args.log_level, args.log_file)
        config = AgentConfig(store=args.store, pd=args.pd, broker=args.broker or FleetSettings().broker,
                             staging_dir=args.staging_dir, concurrency=args.concurrency,
                             allowed_destinations=args.allow_destination, store_wait=args.store_wait,
                             log_level=args.log_level.upper().replace("WARN", "WARNING"))
        return run(config)
    except (AgentError, OSError) as exc:
        print(f"br-agent: error: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"br-agent: error: {'.'.join(map(str, first['loc']))}: {first['msg']}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
