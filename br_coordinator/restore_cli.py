"""`br restore`'s command line: its commands and flags only. The job (br_coordinator.restore)
loads when a command runs, so `br --help` stays fast."""
from __future__ import annotations

import argparse

from br_coordinator import flags

JOB = "br_coordinator.restore"


def register(subparsers: argparse._SubParsersAction) -> None:
    restore = flags.JobVerb.add(subparsers, "restore", "restore a TiKV cluster from a backup",
                                "restore a backup from S3 (or a local directory every agent reaches) into a TiKV "
                                "cluster, through the br-agent beside each store",
                                [flags.common_parser(), _restore_parser()])
    restore.command("full", flags.run_later(JOB, "run_full"), "restore all the backed-up key space",
                    "restore every range of a backup (transactional or raw, as it was taken)",
                    epilog='Example: br restore full --pd "${PDIP}:2379" --storage "s3://${Bucket}/${Folder}" '
                           '--ratelimit 128 --log-file restore.log')
    restore.command("raw", flags.run_later(JOB, "run_raw"), "restore a raw kv range to TiKV cluster",
                    "(experimental) restore the part of a raw backup inside [--start, --end)",
                    [flags.raw_parser("restore")])
    restore.command("txn", flags.run_later(JOB, "run_txn"), "restore a txn kv range to TiKV cluster",
                    "(experimental) restore the part of a transactional backup inside [--start, --end) "
                    "(raw user keys), commit timestamps kept", [flags.txn_parser("restore")])


def _restore_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("Restore Flags")
    group.add_argument("--allow-non-empty", type=flags.parse_bool, nargs="?", const=True, default=False,
                       metavar="BOOL", help="restore even when the target already holds keys in the restored "
                                            "ranges: the backup's keys are written over them, the others stay "
                                            "(and then fail --checksum, which compares whole ranges) "
                                            "(default false)")
    return parser
