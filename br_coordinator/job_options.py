"""What a job runs with, typed and built once from the flags: the operator's choices (BR's flags)
and the job's knobs with their defaults in one place, so no job module reads argparse or keeps a
module constant of its own.

    options = BackupOptions.from_args(args, whole, BackupKind.RAW)
    options.rate_limit      # bytes/s per store (--ratelimit is MiB/s)
"""
from __future__ import annotations

import argparse

from pydantic import BaseModel, ConfigDict, Field

from br_common.backupmeta.kind import BackupKind
from br_common.fleet.messages import Compression, KeyRange
from br_common.storage.options import MiB

# ranges checksummed at once after a backup or restore, each by its regions' stores (BR's
# --checksum-concurrency default)
CHECKSUM_CONCURRENCY = 4


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    concurrency: int = Field(4, ge=1)  # --concurrency: tasks in flight per store
    rate_limit: int = Field(0, ge=0)  # --ratelimit in bytes/s per store, 0 = unlimited
    checksum: bool = True  # --checksum


class BackupOptions(_Options):
    kind: BackupKind
    whole: KeyRange  # the range backed up: everything (full) or --start/--end (raw)
    compression: Compression = "zstd"
    compression_level: int = 0
    backupts: int | None = None  # --backupts: a TSO
    timeago: float | None = None  # --timeago, seconds
    last_backup_ts: int = Field(0, ge=0)  # --lastbackupts: 0 a full backup, else an incremental after it
    gcttl: int = Field(300, ge=1)  # --gcttl: the service safe point's TTL while the backup runs
    checkpoint_gcttl: int = Field(4320, ge=1)  # --checkpoint-gcttl: how long an interrupted job stays resumable
    max_attempts: int = Field(10, ge=1)  # per piece of the key space

    @classmethod
    def from_args(cls, args: argparse.Namespace, whole: KeyRange, kind: BackupKind) -> "BackupOptions":
        return cls(kind=kind, whole=whole, concurrency=args.concurrency, rate_limit=args.ratelimit * MiB,
                   checksum=args.checksum, compression=args.compression, compression_level=args.compression_level,
                   backupts=args.backupts or None, timeago=args.timeago or None, gcttl=args.gcttl,
                   checkpoint_gcttl=args.checkpoint_gcttl, last_backup_ts=args.lastbackupts)


class RestoreOptions(_Options):
    wanted: KeyRange | None = None  # --start/--end of `restore raw|txn`; None: every backed-up range
    only_kind: BackupKind | None = None  # what `restore raw|txn` accepts; None (`restore full`): any kind
    allow_non_empty: bool = False  # --allow-non-empty
    split_batch: int = Field(1024, ge=1)  # split keys per SplitRegions call
    discard_timeout: float = 15.0  # seconds for the agents to drop what a run staged and never ingested
    spec_refresh: float = 1.0  # seconds a StorageSpec (sealed to the agents alive then) is reused
    # seconds to wait for the target PD's clock to pass a txn backup's end version before moving
    # its TSO with reset-ts (clocks of synced hosts differ by milliseconds)
    tso_patience: float = 2.0

    @classmethod
    def from_args(cls, args: argparse.Namespace, wanted: KeyRange | None,
                  only_kind: BackupKind | None = None) -> "RestoreOptions":
        return cls(wanted=wanted, only_kind=only_kind, concurrency=args.concurrency, rate_limit=args.ratelimit * MiB,
                   checksum=args.checksum, allow_non_empty=args.allow_non_empty)
