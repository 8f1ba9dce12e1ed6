"""`br-agent`: the worker beside one store (see br_agent.agent).

Every setting's flag, meaning and default in --help come from br_agent.settings.AgentSettings,
so help, config file and environment describe the same thing.
"""
from __future__ import annotations

import argparse
import logging
import sys
import typing
from typing import Any

from pydantic import ValidationError

from br_agent.settings import ENV_PREFIX, AgentSettings, field_extra, load, shown_default
from br_common.fleet.broker import has_password
from br_common.version import fleet_version

LOG_FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="br-agent", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the br-fleet agent beside one TiKV store: back up (and restore) that store's\n"
                    "ranges for `br`, moving data with this host's own S3 credentials.\n\n"
                    f"Every setting comes from its flag, else the environment variable {ENV_PREFIX}<NAME>,\n"
                    "else the --config file's key <name>, else its default (lists from the environment\n"
                    "are JSON: '[\"s3://bucket/prefix\"]').",
        epilog=_epilog())
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (deploy/config/agent.toml.example); "
                                                          "an unknown key is an error")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the settings, print them (secrets masked) and exit 0, or name the problem "
                             "and exit 1; connects to nothing")
    settings = parser.add_argument_group("settings")
    for name in AgentSettings.model_fields:
        _add_setting(settings, name)
    parser.add_argument("-V", "--version", action="version", version=f"br-agent (br-fleet) {fleet_version()}")
    return parser


def _add_setting(group: argparse._ArgumentGroup, name: str) -> None:
    extra = field_extra(name)
    if extra.get("env_only"):
        return  # a secret: never a flag (argv is world-readable); listed in the epilog
    field = AgentSettings.model_fields[name]
    flags = extra.get("flags") or [f"--{name.replace('_', '-')}"]
    is_list = typing.get_origin(field.annotation) is list
    kind = _scalar_type(field.annotation)
    help_text = f"{field.description} [default {shown_default(name)}; env {ENV_PREFIX}{name.upper()}; file key {name}"
    help_text += "; repeatable]" if is_list else "]"
    group.add_argument(*flags, dest=name, default=None, action="append" if is_list else "store",
                       type=kind, metavar=extra.get("metavar"), help=help_text.replace("%", "%%"))


def _scalar_type(annotation: Any) -> type:
    for candidate in (int, float):
        if annotation is candidate:
            return candidate
    return str  # pydantic converts str to Path and validates the rest


def _epilog() -> str:
    secrets = [f"  {ENV_PREFIX}{name.upper()}: {field.description} [default {shown_default(name)}]"
               for name, field in AgentSettings.model_fields.items() if field_extra(name).get("env_only")]
    return "\n".join(["environment only (secrets never go on a command line):", *secrets, "",
                      "Example: br-agent --config /etc/br-fleet/agent.toml --check-config",
                      "         br-agent --store 10.0.1.2:20160 --pd 10.0.1.1:2379 --broker redis://10.0.1.1:6379/0"])


def _setup_logging(level: str, log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name, None) for name in AgentSettings.model_fields}


def _check(settings: AgentSettings, ignored: list[str], args: argparse.Namespace) -> int:
    from br_agent import check_config  # noqa: PLC0415 - the agent's imports are not for --help

    found = check_config.problems(settings)
    for problem in found:
        print(f"br-agent: error: {problem}", file=sys.stderr)
    if found:
        return 1
    check_config.report(settings, args.config, _overrides(args), sys.stdout)
    for warning in check_config.warnings(settings, ignored):
        print(f"br-agent: warning: {warning}", file=sys.stderr)
    print("br-agent: configuration OK", file=sys.stderr)
    return 0


def _serve(settings: AgentSettings, ignored: list[str], config_file: str | None) -> int:
    _setup_logging(settings.log_level, settings.log_file or None)
    for key in ignored:
        logging.getLogger("br_agent").warning("setting %r in %s is not supported by this br-agent and is "
                                              "ignored", key, config_file)
    from br_agent.agent import run  # noqa: PLC0415 - Celery, boto3, gRPC: not for --help

    return run(settings)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    failed = 1 if args.check_config else 2
    if args.broker and has_password(args.broker):
        print("br-agent: error: --broker must not contain the Redis password (command lines are visible to every "
              "local user): use BR_AGENT_BROKER_PASSWORD or broker_password_file", file=sys.stderr)
        return failed
    try:
        settings, ignored = load(args.config, _overrides(args))
        if args.check_config:
            return _check(settings, ignored, args)
        return _serve(settings, ignored, args.config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "settings"
        print(f"br-agent: error: {where}: {first['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return failed
    except (RuntimeError, OSError, ValueError) as exc:  # AgentError is a RuntimeError
        print(f"br-agent: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return (str(exc) or type(exc).__name__).splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
