"""`br backup`'s command line: its commands and flags only. The job (br_coordinator.backup) and
what it imports (Celery, boto3, gRPC) load when a command runs, so `br --help` stays fast."""
from __future__ import annotations

import argparse

from br_coordinator import flags

JOB = "br_coordinator.backup"


def register(subparsers: argparse._SubParsersAction) -> None:
    backup = flags.JobVerb.add(subparsers, "backup", "backup a TiKV cluster",
                               "backup a TiKV cluster to S3 (or a local directory every agent reaches), through "
                               "the br-agent beside each store", [flags.common_parser(), flags.backup_parser()])
    backup.command("full", flags.run_later(JOB, "run_full"), "backup the whole key space",
                   "backup the whole transactional key space of the cluster (what TiDB stores) as it was at the "
                   "backup ts: every committed transaction, TiKV's write and default files per region. There is "
                   "no --filter: TiDB's schemas travel as the meta keys inside the txn key space, so they are "
                   "backed up with the data (raw KV: `br backup raw`)",
                   epilog='Example: br backup full --pd "${PDIP}:2379" --storage "s3://${Bucket}/${Folder}" '
                          '--ratelimit 128 --log-file backup.log')
    backup.command("raw", flags.run_later(JOB, "run_raw"), "backup a raw kv range from TiKV cluster",
                   "(experimental) backup a raw kv range from TiKV cluster", [flags.raw_parser("backup")])
    backup.command("txn", flags.run_later(JOB, "run_txn"), "backup a txn kv range from TiKV cluster",
                   "(experimental) backup a txn kv range from TiKV cluster: the committed transactional data "
                   "in [--start, --end) (raw user keys) at the backup ts", [flags.txn_parser("backup")])
