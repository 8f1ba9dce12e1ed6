"""`br`: the coordinator CLI. One module per verb: each exposes `register(subparsers)`, adding
its parser with `set_defaults(func=...)` where func(args) -> exit code. `br_coordinator.backup`
is always there; `br_coordinator.restore` is added when present (written separately).

Errors: CommandError/ValueError -> `br: error: <one line>` and exit 1; bad flags -> argparse's
usage line and exit 2; Ctrl-C -> exit 130. Never a traceback (the full one goes to --log-file).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

# only light imports up here: a URL with keys must leave the command line (re-exec in main)
# before the interpreter spends time importing Celery, boto3 and friends
from br_coordinator.errors import CommandError
from br_coordinator.hide_args import hide_storage_secrets, read_storage_arg

VERBS = ("br_coordinator.backup", "br_coordinator.restore", "br_coordinator.fleet_status")
log = logging.getLogger("br")


def build_parser() -> argparse.ArgumentParser:
    from br_common.fleet.config import fleet_version  # noqa: PLC0415 - see the imports above

    parser = argparse.ArgumentParser(
        prog="br", description="br is a TiKV cluster backup restore tool (br-fleet: the work runs on a "
                               "br-agent beside each store, over Celery).",
        epilog='Use "br [command] --help" for more information about a command.')
    parser.add_argument("-V", "--version", action="version", version=f"br (br-fleet) {fleet_version()}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", title="Available Commands")
    commands.required = True
    for module in VERBS:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
        hide_storage_secrets(argv)  # re-execs itself when -s carries keys: they leave the cmdline
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "storage"):
            args.storage = read_storage_arg(args.storage)
        return int(args.func(args))
    except (CommandError, ValueError) as exc:
        log.debug("failed", exc_info=True)
        print(f"br: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("br: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line here, the traceback in the log file
        log.exception("unexpected error")
        print(f"br: error: unexpected {type(exc).__name__}: {exc} (details in --log-file)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
