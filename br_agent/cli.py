"""`br-agent`: the worker beside one store (see br_agent.agent)."""
from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from br_agent.agent import AgentConfig, AgentError, run
from br_agent.settings import load
from br_common.fleet.config import FleetSettings, fleet_version

LOG_FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="br-agent",
        description="Run the br-fleet agent beside one TiKV store: back up (and restore) that store's "
                    "ranges for `br`, uploading with this host's own S3 credentials.",
        epilog="Example: br-agent --store 10.0.1.2:20160 --pd 10.0.1.1:2379 --broker redis://10.0.1.1:6379/0")
    parser.add_argument("--config", metavar="FILE", help="TOML settings (deploy/config/agent.toml.example); "
                                                          "flags > BR_AGENT_* env > file")
    parser.add_argument("--store", metavar="HOST:PORT",
                        help="the store's address, as registered in PD (default 127.0.0.1:20160)")
    parser.add_argument("-u", "--pd", metavar="ADDR", help="PD address(es), comma-separated (default 127.0.0.1:2379)")
    parser.add_argument("--broker", default=None, metavar="URL",
                        help="Redis URL of the fleet (env BR_BROKER; default redis://127.0.0.1:6379/0)")
    parser.add_argument("--staging-dir", default=None, metavar="DIR",
                        help="local directory the store writes SST files to before upload; also holds the "
                             "agent's sealing key (default: $TMPDIR/br-agent-HOST-PORT)")
    parser.add_argument("--concurrency", type=int, help="tasks run at once (default 8)")
    parser.add_argument("--allow-destination", action="append", default=None, metavar="URL",
                        help="only write to storage under this URL prefix (repeatable; default: anywhere "
                             "this host's credentials reach)")
    parser.add_argument("--store-wait", type=float, metavar="SECONDS",
                        help="how long to wait for the store to register with PD (default 60)")
    parser.add_argument("--log-level", type=str.lower, choices=["debug", "info", "warn", "warning", "error"],
                        help="log level (default info)")
    parser.add_argument("--log-file", default=None, help="also write the log to this file")
    parser.add_argument("-V", "--version", action="version", version=f"br-agent (br-fleet) {fleet_version()}")
    return parser


def _setup_logging(level: str, log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers,
                        force=True)
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings, ignored = load(args.config, {
            "store": args.store, "pd": args.pd, "broker": args.broker, "staging_dir": args.staging_dir,
            "concurrency": args.concurrency, "allowed_destinations": args.allow_destination,
            "store_wait": args.store_wait, "log_level": args.log_level, "log_file": args.log_file})
        level = settings.log_level.upper().replace("WARNING", "WARN").replace("WARN", "WARNING")
        _setup_logging(level, settings.log_file or None)
        for key in ignored:
            logging.getLogger("br_agent").warning("setting %r in %s is not supported by this br-agent and is "
                                                  "ignored", key, args.config)
        config = AgentConfig(store=settings.store, pd=settings.pd, broker=settings.broker_url(FleetSettings().broker),
                             staging_dir=settings.staging_dir, concurrency=settings.concurrency,
                             allowed_destinations=settings.allowed_destinations, store_wait=settings.store_wait,
                             log_level=level)
        return run(config)
    except (AgentError, OSError, ValueError) as exc:
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
