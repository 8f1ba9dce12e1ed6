"""BR's flag names, defaults and help texts, shared by `br backup` and `br restore`.

    parser = subparsers.add_parser("full", parents=[flags.common_parser(), flags.backup_parser()])
    args = parser.parse_args(...)
    flags.s3_flags(args) -> S3Flags; flags.resolve_broker(args) (job options: br_coordinator.job_options)

Boolean flags behave as Go's pflag: `--checksum` = true, `--checksum=false` turns it off.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from br_common import key_format
from br_common.addresses import parse_pd_addresses
from br_common.fleet.broker import has_password
from br_common.fleet.messages import KeyRange
from br_common.storage import S3Flags
from br_common.storage.url import FLAG_PARAMS
from br_common.tso import compose
from br_coordinator.errors import CommandError

if TYPE_CHECKING:
    from br_common.grpc_tls import TLSConfig

MiB = 1024 * 1024
# ranges of the numeric flags (see int_in)
MAX_RATE_LIMIT_MIB = 1 << 20  # 1 TiB/s per store: anything above is a typo; x MiB fits uint64 rate_limit
MAX_CONCURRENCY = 1024  # ranges in flight per store (uint32 concurrency); more only queues on the store
MAX_TTL_SECONDS = 365 * 24 * 3600  # PD's int64 TTL; holding GC back for over a year is a mistake
MAX_TIMEAGO_HOURS = 10 * 365 * 24  # ten years
COMPRESSION_LEVELS = (-(1 << 17), 22)  # zstd's range (int32 compression_level); 0: the algorithm's default
COMPRESSIONS = ("lz4", "zstd", "snappy")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "t", "1", "yes"):
        return True
    if lowered in ("false", "f", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {value!r} (use true or false)")


def parse_duration(value: str) -> float:
    """Go durations ("1h", "90m", "1h30m", "1.5s") -> seconds."""
    text = value.strip()
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise argparse.ArgumentTypeError(f"invalid duration {value!r} (e.g. 30s, 15m, 1h30m)")
    return total


def parse_backupts(value: str) -> int:
    """A TSO ("400036290571534337") or a local datetime ("2018-05-11 01:42:23") -> TSO (a uint64)."""
    ts = _backupts(value.strip())
    if not 0 < ts < 1 << 64:
        raise argparse.ArgumentTypeError(f"--backupts {value!r} is out of range: a TSO is 1 to {(1 << 64) - 1}, "
                                         "a datetime after 1970")
    return ts


def parse_last_backup_ts(value: str) -> int:
    """--lastbackupts: a TSO only (as BR: the previous backup's end version)."""
    if not value.strip().isdigit() or not 0 <= int(value) < 1 << 64:
        raise argparse.ArgumentTypeError(f"--lastbackupts {value!r} is not a TSO (the previous backup's end version)")
    return int(value)


def _backupts(text: str) -> int:
    if text.isdigit():
        return int(text)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"):
        try:
            moment = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return compose(int(moment.timestamp() * 1000), 0)
    raise argparse.ArgumentTypeError(f"invalid --backupts {text!r}: use a TSO or 'YYYY-MM-DD HH:MM:SS'")


def parse_timeago(value: str) -> float:
    """--timeago: a duration of at most MAX_TIMEAGO_HOURS (a longer one is a typo, and no TSO is that old)."""
    seconds = parse_duration(value)
    if seconds > MAX_TIMEAGO_HOURS * 3600:
        raise argparse.ArgumentTypeError(f"--timeago {value} is out of range: allowed 0s to {MAX_TIMEAGO_HOURS}h")
    return seconds


def parse_key(value: str, fmt: str) -> bytes:
    """A --start/--end key in BR's formats (br_common.key_format): raw, escaped, hex."""
    try:
        return key_format.parse_key(value, fmt)
    except key_format.KeyFormatError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def int_in(flag: str, low: int, high: int, unit: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], else one line naming the flag and its range.
    The bounds are what the flag's protobuf field can carry and what makes sense, so a value that
    would overflow (or wrap) fails here, before anything is written."""
    shown_unit = f" {unit}" if unit else ""

    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} {value!r} is not an integer") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{flag} {value}{shown_unit} is out of range: allowed {low} to {high}"
                                             f"{shown_unit}")
        return number
    return parse


class BRArgumentParser(argparse.ArgumentParser):
    """Parsing as BR's (Go pflag) does: no prefix abbreviations, so a mistyped `--check=false`
    is an error rather than a silent `--checksum=false`. Subcommand parsers inherit the class."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


# BR's persistent flags may come before or after the subcommand (`br --pd X backup full` and
# `br backup full --pd X`): they are declared on both levels with SUPPRESS defaults, so neither
# level overwrites what the other was given, and the defaults are filled in after parsing.
COMMON_DEFAULTS: dict[str, object] = {}


def _flag(group: argparse._ActionsContainer, *names: str, default: object, **kwargs: object) -> None:
    action = group.add_argument(*names, default=argparse.SUPPRESS, **kwargs)  # type: ignore[arg-type]
    COMMON_DEFAULTS[action.dest] = default


def _bool_flag(group: argparse._ActionsContainer, *names: str, default: bool, help: str) -> None:  # noqa: A002
    """A pflag-style boolean: `--checksum` = true, `--checksum=false` turns it off."""
    _flag(group, *names, type=parse_bool, nargs="?", const=True, default=default, metavar="BOOL",
          help=f"{help} (default {str(default).lower()})")


def apply_common_defaults(args: argparse.Namespace, overrides: dict[str, object] | None = None) -> None:
    """Fill in the persistent flags nobody gave (a verb may prefer other defaults, e.g. fleet status's
    quieter log level)."""
    for dest, default in {**COMMON_DEFAULTS, **(overrides or {})}.items():
        if not hasattr(args, dest):
            setattr(args, dest, default)


def connection_flags(group: argparse._ActionsContainer) -> None:
    """How `br` reaches the cluster and the fleet: PD (with TLS) and the broker; logging."""
    _flag(group, "-u", "--pd", default="127.0.0.1:2379", type=parse_pd, metavar="ADDR[,ADDR...]",
          help="PD address(es), comma-separated: every PD of the cluster, or any of them "
               "(default 127.0.0.1:2379)")
    _flag(group, "--ca", default="", metavar="PATH",
          help="CA certificate path for TLS connections to PD and TiKV (tiup's enable_tls); with --cert and "
               "--key also for mutual TLS (default: plain gRPC)")
    _flag(group, "--cert", default="", metavar="PATH", help="certificate path for TLS connections")
    _flag(group, "--key", default="", metavar="PATH", help="private key path for TLS connections")
    _flag(group, "--broker", default=None, metavar="URL",
          help="Redis URL of the br-fleet (Celery broker, job state), redis:// or rediss:// (TLS: "
               "?ssl_ca_certs=FILE); env BR_BROKER (a devcluster writes it to .devcluster/br.env), default "
               "redis://127.0.0.1:6379/0. Never with the password: that comes from BR_BROKER, "
               "BR_BROKER_PASSWORD or BR_BROKER_PASSWORD_FILE")
    _flag(group, "--log-file", default=None, metavar="PATH",
          help="set the log file path (default /tmp/br.log.<timestamp>, printed at start; it receives the "
               "arguments, every log line at --log-level, the final error and the summary)")
    _flag(group, "-L", "--log-level", default="info", choices=["debug", "info", "warn", "error", "fatal"],
          help='set the log level (default "info")')
    _flag(group, "--log-format", default="text", choices=["text", "json"],
          help='the log file\'s format: text lines or one JSON object per line (default "text")')
    _bool_flag(group, "--redact-info-log", default=False,
               help="redact user keys in log lines and messages (shown as ?), as BR's --redact-info-log")


def connection_parser() -> argparse.ArgumentParser:
    """The global flags of verbs that touch no storage (fleet status)."""
    parser = argparse.ArgumentParser(add_help=False)
    connection_flags(parser.add_argument_group("Global Flags"))
    return parser


@dataclass(frozen=True)
class run_later:  # noqa: N801 - used like a function: run_later(module, name)
    """A command's func that imports its job module only when the command runs: the parsers are
    built for every `br` call (--help included), the jobs' imports (Celery, boto3, gRPC) are not."""

    module: str
    name: str

    def __call__(self, args: argparse.Namespace) -> int:
        import importlib  # noqa: PLC0415 - only when a command runs

        return getattr(importlib.import_module(self.module), self.name)(args)

    @property
    def target(self) -> Callable[[argparse.Namespace], int]:
        """The job function itself (for tests)."""
        import importlib  # noqa: PLC0415

        return getattr(importlib.import_module(self.module), self.name)


@dataclass
class JobVerb:
    """`br backup` / `br restore`: a verb whose commands (full, raw, ...) share its flags, and each
    writes a log file of its own (job_log)."""

    commands: argparse._SubParsersAction
    parents: list[argparse.ArgumentParser]

    @classmethod
    def add(cls, subparsers: argparse._SubParsersAction, verb: str, help: str, description: str,  # noqa: A002
            parents: list[argparse.ArgumentParser]) -> JobVerb:
        parser = subparsers.add_parser(verb, help=help, description=description)
        commands = parser.add_subparsers(dest=f"{verb}_command", metavar="<command>", title="Available Commands")
        commands.required = True
        return cls(commands, parents)

    def command(self, name: str, func: Callable[[argparse.Namespace], int], help: str,  # noqa: A002
                description: str, extra: Sequence[argparse.ArgumentParser] = (), epilog: str | None = None) -> None:
        command = self.commands.add_parser(name, parents=[*self.parents, *extra], help=help,
                                           description=description, epilog=epilog)
        command.set_defaults(func=func, job_log=True)


def common_parser() -> argparse.ArgumentParser:
    """BR's global flags (accepted before or after the subcommand, as BR's persistent flags are)."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("Global Flags")
    connection_flags(group)
    _flag(group, "-s", "--storage", default=None, metavar="URL",
          help='specify the url where backup storage, eg, "s3://bucket/path/prefix". Keys in the URL '
               '(access-key=...) leave the command line at once; to keep them off it entirely give '
               '@env:NAME (read from that environment variable) or @file:PATH')
    _bool_flag(group, "-c", "--send-credentials-to-tikv", default=False,
               help="whether to send the storage URL's credentials to the agents, sealed to each agent's "
                    "public key. BR's default is true; br-fleet's is false, on purpose: without it the agents "
                    "use their host's own credentials (EC2 instance profile) and keys never travel")
    _flag(group, "--ratelimit", default=0, type=int_in("--ratelimit", 0, MAX_RATE_LIMIT_MIB, "MiB/s"),
          metavar="MiB/s",
          help="the rate limit of the task, MiB/s per store, whatever --concurrency: the store's agent owns "
               "the budget, all its uploads (or downloads, for restore) share one stream at that rate, so what "
               "a store moves to or from storage never exceeds it; the store's own backup reads are limited per "
               "request as in BR, and run ahead of the uploads by at most --concurrency ranges "
               "(default 0: unlimited; at most 1048576)")
    _flag(group, "--concurrency", default=4, type=int_in("--concurrency", 1, MAX_CONCURRENCY),
          help="the number of ranges in flight on each store (default 4; 1 to 1024)")
    _bool_flag(group, "--checksum", default=True,
               help="run checksum at end of task. backup: each agent reads every file the store wrote and checks "
                    "its pairs against the store's crc64xor/total_kvs/total_bytes before uploading it (TiKV's "
                    "RawChecksum reads the live data, not backup_ts, so a raw backup cannot be compared with "
                    "the cluster while it is written to); restore: RawChecksum of every restored range "
                    "against backupmeta")
    s3 = parser.add_argument_group("S3 Flags (a parameter in the storage URL wins)")
    for name in FLAG_PARAMS:
        _flag(s3, f"--s3.{name}", dest=f"s3_{name.replace('-', '_')}", default=None, metavar="VALUE",
              help=_S3_HELP.get(name, f"the S3 {name}"))
    return parser


def parse_pd(value: str) -> str:
    """`host:port[,host:port...]` (an http:// or https:// prefix allowed, as in BR), checked here so a
    typo is one line before anything connects. Returns the list normalised, comma-separated."""
    try:
        return ",".join(parse_pd_addresses(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_S3_HELP = {
    "endpoint": "(experimental) Set the S3 endpoint URL, please specify the http or https scheme explicitly",
    "region": "(experimental) Set the S3 region, e.g. us-east-1",
    "storage-class": "(experimental) Set the S3 storage class, e.g. STANDARD",
    "sse": "Set S3 server-side encryption, e.g. aws:kms",
    "sse-kms-key-id": "KMS CMK key id to use with S3 server-side encryption. Leave empty to use S3 owned key.",
    "acl": "(experimental) Set the S3 canned ACLs, e.g. authenticated-read",
    "provider": "(experimental) Set the S3 provider, e.g. aws, alibaba, ceph",
    "role-arn": "The ARN of the IAM role to assume when accessing AWS S3",
    "external-id": "The external ID to use when assuming the role",
    "profile": "The AWS profile to use from the shared configuration",
}


def backup_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("Backup Flags")
    group.add_argument("--compression", default="zstd", choices=COMPRESSIONS,
                       help="backup sst file compression algorithm, value can be one of 'lz4|zstd|snappy' "
                            '(default "zstd")')
    group.add_argument("--compression-level", type=int_in("--compression-level", *COMPRESSION_LEVELS), default=0,
                       help="compression level used for sst file compression (default 0: the algorithm's default; "
                            "-131072 to 22)")
    group.add_argument("--backupts", type=parse_backupts, metavar="TS",
                       help="the backup ts support TSO or datetime, e.g. '400036290571534337', '2018-05-11 01:42:23'")
    group.add_argument("--timeago", type=parse_timeago, metavar="DURATION",
                       help="the history version of the backup task, e.g. 1m, 1h. Do not exceed GCSafePoint")
    group.add_argument("--lastbackupts", type=parse_last_backup_ts, default=0, metavar="TS",
                       help="the last time backup ts, use for incremental backup, support TSO only: the newest "
                            "change of every key committed after it (deletes included); full and txn backups only")
    group.add_argument("--lastbackup", default=None, metavar="URL",
                       help="the previous backup this incremental one builds on, as a storage URL (the forms of "
                            "-s, @env:NAME and @file:PATH included; the S3 flags apply to it too): an agent reads "
                            "its backupmeta, which must be sealed intact, transactional and cover the range backed "
                            "up; its end version is the --lastbackupts (if both are given they must agree). With "
                            "--lastbackupts alone br checks the fleet's job records for that backup instead, and "
                            "warns when it knows none")
    group.add_argument("--gcttl", type=int_in("--gcttl", 1, MAX_TTL_SECONDS), default=300, metavar="SECONDS",
                       help="the TTL (in seconds) that PD holds for BR's GC safepoint while the backup runs; "
                            "refreshed every TTL/3 (default 300; at most a year)")
    group.add_argument("--checkpoint-gcttl", type=int_in("--checkpoint-gcttl", 1, MAX_TTL_SECONDS), default=4320,
                       metavar="SECONDS",
                       help="how long the GC safe point of an interrupted or failed backup is kept, so that "
                            "rerunning the same command resumes it even after PD's gc_life_time; removed at once "
                            "when the backup completes or is abandoned (br fleet abandon) (default 4320, BR's "
                            "checkpoint TTL; at most a year)")
    return parser


def range_flags(group: argparse._ActionsContainer, verb: str, space: str) -> None:
    """--start/--end/--format: a key range of `space` ("raw kv", "txn kv")."""
    group.add_argument("--start", default="", help=f"{verb} {space} start key, key is inclusive")
    group.add_argument("--end", default="", help=f"{verb} {space} end key, key is exclusive (empty: to the end)")
    group.add_argument("--format", default="hex", choices=key_format.KEY_FORMATS,
                       help='start/end key format, support raw|escaped|hex (default "hex")')


def raw_parser(verb: str) -> argparse.ArgumentParser:
    """The key range flags of `br <verb> raw` (--start, --end, --format, --cf)."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("Raw Flags")
    range_flags(group, verb, "raw kv")
    group.add_argument("--cf", default="default", help=f'{verb} specify cf, correspond to tikv cf (default "default")')
    return parser


def txn_parser(verb: str) -> argparse.ArgumentParser:
    """The key range flags of `br <verb> txn`: raw user keys of the transactional key space (BR
    declares --start/--end for `backup txn` and ignores them; ours bound the backup)."""
    parser = argparse.ArgumentParser(add_help=False)
    range_flags(parser.add_argument_group("Txn Flags"), verb, "txn kv")
    return parser


def key_range(args: argparse.Namespace) -> KeyRange:
    """[--start, --end), checked."""
    try:
        start, end = parse_key(args.start, args.format), parse_key(args.end, args.format)
    except argparse.ArgumentTypeError as exc:
        raise CommandError(str(exc)) from None
    if end and end <= start:
        raise CommandError("--end must be greater than --start (or empty for the end of the key space)")
    return KeyRange(start=start, end=end)


def raw_range(args: argparse.Namespace, holders: str) -> KeyRange:
    """[--start, --end) of `raw`, checked; `holders` names what holds only the default cf."""
    whole = key_range(args)
    if args.cf != "default":
        raise CommandError(f"--cf {args.cf}: {holders} hold only the default cf")
    return whole


def tls_config(args: argparse.Namespace) -> TLSConfig:
    """--ca/--cert/--key as the TLS of every gRPC connection to PD and TiKV (one line when inconsistent)."""
    from br_common.grpc_tls import TLSConfig  # noqa: PLC0415 - grpc is heavy for `br --help`
    from pydantic import ValidationError  # noqa: PLC0415

    try:
        return TLSConfig(ca=args.ca, cert=args.cert, key=args.key)
    except ValidationError as exc:
        raise CommandError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None


def s3_flags(args: argparse.Namespace) -> S3Flags:
    return S3Flags(**{name.replace("-", "_"): getattr(args, f"s3_{name.replace('-', '_')}")
                      for name in FLAG_PARAMS})


def resolve_broker(args: argparse.Namespace) -> str:
    """--broker or BR_BROKER, with the password of BR_BROKER_PASSWORD(_FILE) (br_common.fleet.broker).
    A password in --broker is refused: every local user can read a command line."""
    if args.broker and has_password(args.broker):
        raise CommandError("--broker must not contain the Redis password (command lines are visible to every "
                           "local user): put it in BR_BROKER_PASSWORD_FILE, BR_BROKER_PASSWORD or BR_BROKER")
    from br_common.fleet.config import FleetSettings  # noqa: PLC0415 - pydantic-settings: not for --help

    settings = FleetSettings(broker=args.broker) if args.broker else FleetSettings()
    try:
        return settings.resolved_broker()
    except ValueError as exc:
        raise CommandError(str(exc)) from None
