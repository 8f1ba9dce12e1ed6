"""Turning one region's visible pairs into backup SST files and their backup.File records.

Names are deterministic ({store}/{region}_{epoch version}_{sha256(file start key)}_{ms}_default.sst)
so a retried backup overwrites its files instead of adding new ones. The files of a region tile
its overlap with the request: the first starts at the overlap start, each next one at its own
first key, and each ends where the next starts (the last at the overlap end).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rocksdict import Options

from br_common.checksum import Checksum
from br_common.data_keys import data_key
from br_common.kvproto import brpb_pb2
from br_common.tso import physical_ms
from br_devcluster.store.ratelimit import RateLimiter
from br_devcluster.store.sstfiles import SstBuilder

ROLL_BYTES = 64 * 1024 * 1024  # key+value bytes per file before rolling to the next one
CF = "default"


@dataclass(frozen=True)
class RegionBackup:
    """What names and bounds the files of one region."""
    root: Path  # the local backend's path
    store_id: int
    region_id: int
    epoch_version: int
    start_key: bytes  # the overlap of the request and the region
    end_key: bytes
    start_version: int
    end_version: int

    def relative_name(self, file_start_key: bytes) -> str:
        digest = hashlib.sha256(file_start_key).hexdigest()
        return (f"{self.store_id}/{self.region_id}_{self.epoch_version}_{digest}_"
                f"{physical_ms(self.end_version)}_{CF}.sst")


def write_region_files(target: RegionBackup, pairs: Iterable[tuple[bytes, bytes]], options: Options,
                       limiter: RateLimiter, roll_bytes: int = ROLL_BYTES) -> list[brpb_pb2.File]:
    """Write the (ascending) pairs to SSTs; no pairs, no files."""
    files: list[brpb_pb2.File] = []
    builder: SstBuilder | None = None
    current: brpb_pb2.File | None = None
    checksum = Checksum()
    try:
        for key, value in pairs:
            if builder is None:
                file_start = target.start_key if not files else key
                name = target.relative_name(file_start)
                builder = SstBuilder(target.root / name, options)
                current, checksum = _new_file(target, name, file_start), Checksum()
                files.append(current)
            builder.add(data_key(key), value)  # TiKV's backup files hold data keys
            checksum.add(key, value)
            limiter.consume(len(key) + len(value))
            if checksum.total_bytes >= roll_bytes:
                _finish(builder, current, checksum)
                builder = None
        if builder is not None:
            _finish(builder, current, checksum)
            builder = None
    finally:
        if builder is not None:
            builder.abort()
    for this, following in zip(files, files[1:]):
        this.end_key = following.start_key
    if files:
        files[-1].end_key = target.end_key
    return files


def _new_file(target: RegionBackup, name: str, start_key: bytes) -> brpb_pb2.File:
    return brpb_pb2.File(name=name, start_key=start_key, start_version=target.start_version,
                         end_version=target.end_version, cf=CF)


def _finish(builder: SstBuilder, record: brpb_pb2.File, checksum: Checksum) -> None:
    done = builder.finish()
    record.sha256 = done.sha256
    record.size = done.size
    record.crc64xor = checksum.crc64xor
    record.total_kvs = checksum.total_kvs
    record.total_bytes = checksum.total_bytes
