"""What `br` does once its command line is safe to show (br_coordinator.cli has re-executed it
without the storage keys): the parser of every verb, logging, running the verb, and turning every
failure into one line and an exit code. One module per verb: each exposes `register(subparsers)`,
adding its parser with `set_defaults(func=...)` where func(args) -> exit code.

Errors: CommandError/ValueError -> `br: error: <one line>` and exit 1; bad flags -> argparse's
usage line and exit 2; Ctrl-C or SIGTERM -> exit 130. Never a traceback (the full one goes to the
log file).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import platform
import re
import shlex
import signal
import sys

from br_common.version import fleet_version
from br_common.redaction import set_redact
from br_common.storage import parse_storage_url
from br_coordinator import flags, logging_setup
from br_coordinator.errors import CommandError
from br_coordinator.hide_args import URL_FLAGS, read_storage_arg, storage_positions

VERBS = ("br_coordinator.backup_cli", "br_coordinator.restore_cli", "br_coordinator.fleet_cli")
log = logging.getLogger("br")

EPILOG = """\
Global flags may come before or after the command (br --pd X backup full = br backup full --pd X).
Flags are never abbreviated: --check=false is an error, not --checksum=false.

Environment:
  BR_BROKER                  Redis URL of the fleet (default redis://127.0.0.1:6379/0); a devcluster
                             writes it to .devcluster/br.env
  BR_BROKER_PASSWORD(_FILE)  the Redis password (never on a command line)
  BR_SIGNING_KEY, BR_SIGNING_CERT
                             PEM key (and its certificate) br signs every task with; agents with
                             trusted_coordinator_keys run only tasks signed by them

Exit status:
  0    done (fleet status: every store has an online agent)
  1    failed: one line on stderr, the details in the log file; rerun the same command to resume
  2    bad flags or arguments
  3    fleet status: a store has no online br-agent
  130  interrupted (Ctrl-C): rerun the same command to resume

Use "br [command] --help" for more information about a command."""


def build_parser() -> argparse.ArgumentParser:
    parser = flags.BRArgumentParser(
        prog="br", parents=[flags.common_parser()], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="br is a TiKV cluster backup restore tool (br-fleet: the work runs on a br-agent beside "
                    "each store, over Celery).", epilog=EPILOG)
    parser.add_argument("-V", "--version", action="version", version=f"br (br-fleet) {fleet_version()}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", title="Available Commands")
    commands.required = True
    for module in VERBS:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).register(commands)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """argv -> the namespace every verb reads (the global flags' defaults filled in)."""
    args = build_parser().parse_args(argv)
    flags.apply_common_defaults(args, getattr(args, "verb_defaults", None))
    return args


def run(argv: list[str]) -> int:
    """Parse, set up logging, run the verb; every failure is one line and an exit code."""
    args = parse_args(argv)
    set_redact(args.redact_info_log)
    signal.signal(signal.SIGTERM, _interrupt)  # systemd, timeout(1): stop as Ctrl-C does (resumable)
    try:
        _start_logging(args)
    except OSError as exc:
        print(f"br: error: {logging_setup.open_error(args.log_file, exc)}", file=sys.stderr)
        return 1
    try:
        if getattr(args, "storage", None) is not None:
            args.storage = read_storage_arg(args.storage)
        if getattr(args, "lastbackup", None) is not None:
            args.lastbackup = read_storage_arg(args.lastbackup, "--lastbackup")
        _log_arguments(argv, args)
        code = int(args.func(args))
        log.info("br exits with %d", code)
        return code
    except (CommandError, ValueError) as exc:
        return _fail(f"br: error: {exc}", 1, exc)
    except KeyboardInterrupt:
        return _fail("br: interrupted; rerun the same command to resume", 130)
    except Exception as exc:  # noqa: BLE001 - last resort: one line here, the traceback in the log file
        log.error("unexpected error", exc_info=True, extra={logging_setup.FILE_ONLY: True})
        return _fail(f"br: error: unexpected {type(exc).__name__}: {exc} (details in the log file)", 1)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _fail(line: str, code: int, exc: BaseException | None = None) -> int:
    """The final error: one line on stderr, the same line (and the traceback at debug) in the log."""
    log.debug("failed", exc_info=exc is not None)
    logging_setup.file_only(log, f"{line} (exit {code})")
    log_file = logging_setup.unannounced_log_file()
    print(f"{line} (log: {log_file})" if log_file else line, file=sys.stderr)
    return code


def _start_logging(args: argparse.Namespace) -> None:
    """Jobs (backup, restore) always log to a file, /tmp/br.log.<timestamp> unless --log-file."""
    chosen = args.log_file is not None
    if not chosen and getattr(args, "job_log", False):
        args.log_file = str(logging_setup.default_log_file())
    logging_setup.setup(args.log_level, args.log_file, quiet_console=sys.stderr.isatty(), log_format=args.log_format,
                        chosen_by_operator=chosen)


def _log_arguments(argv: list[str], args: argparse.Namespace) -> None:
    shown = list(argv)
    for flag in URL_FLAGS:
        for index, prefix in storage_positions(argv, flag):
            shown[index] = prefix + _redacted_storage(getattr(args, flag.removeprefix("--"), None))
    if args.redact_info_log:  # keys are user data: --start/--end values go too
        shown = [("?" if i and shown[i - 1] in ("--start", "--end") else re.sub(r"^(--(?:start|end)=).*", r"\1?", a))
                 for i, a in enumerate(shown)]
    logging_setup.file_only(log, f"br-fleet {fleet_version()} (br {args.command}, Python {platform.python_version()} on "
                   f"{platform.node()})")
    logging_setup.file_only(log, f"arguments: br {shlex.join(shown)}")


def _redacted_storage(url: str | None) -> str:
    if not url:
        return ""
    try:
        return parse_storage_url(url).redacted()
    except ValueError:
        return "<invalid storage URL, not shown>"
