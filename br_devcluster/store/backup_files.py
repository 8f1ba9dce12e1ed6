"""Turning one region's backup entries into backup SST files and their backup.File records.

Names are deterministic ({store}/{region}_{epoch version}_{sha256(chunk start key)}_{ms}_{cf}.sst,
TiKV's naming) so a retried backup overwrites its files instead of adding new ones. A chunk is
one SST per column family that has records (raw: default; txn: write, plus default when long
values exist); a chunk is cut once its counted key+value bytes reach the roll size. The chunks of
a region tile its overlap with the request: the first starts at the overlap start, each next one
at its own first key, and each ends where the next starts (the last at the overlap end).

Checksums follow TiKV's writer: each logical key is counted once, in the file named by
entry.counted_in, over the raw user key and the user value (so a txn write file may hold records
and still count 0 kvs when all its values are long).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fastcrc import crc64
from rocksdict import Options

from br_common.checksum import RunningChecksum
from br_common.data_keys import DATA_PREFIX
from br_common.kvproto import brpb_pb2
from br_common.tso import physical_ms
from br_devcluster.store.ratelimit import RateLimiter
from br_devcluster.store.sstfiles import SstBuilder
from br_devcluster.store.txn_reader import CF_DEFAULT, CF_WRITE

ROLL_BYTES = 64 * 1024 * 1024  # key+value bytes per chunk before rolling to the next one
METER_BYTES = 1024 * 1024  # the rate limiter is charged per MiB written, not per key
CF = CF_DEFAULT  # raw KV (API V1) backups are of the default CF
FILE_ORDER = (CF_DEFAULT, CF_WRITE)  # TiKV lists a chunk's default file before its write file


class BackupEntry(Protocol):
    """One logical key of a backup."""

    raw_key: bytes  # the user key (a chunk starting here starts at it)
    value: bytes  # what the checksum counts with the key
    counted_in: str  # the CF file whose counters count it

    def records(self) -> list[tuple[str, bytes, bytes]]:
        """(cf, key without 'z', value) to write, in CF order."""
        ...


@dataclass(frozen=True)
class RegionBackup:
    """What names and bounds the files of one region."""
    root: Path  # the local backend's path
    store_id: int
    region_id: int
    epoch_version: int
    start_key: bytes  # the overlap of the request and the region (raw user keys)
    end_key: bytes
    start_version: int
    end_version: int

    def relative_name(self, chunk_start_key: bytes, cf: str = CF) -> str:
        digest = hashlib.sha256(chunk_start_key).hexdigest()
        return (f"{self.store_id}/{self.region_id}_{self.epoch_version}_{digest}_"
                f"{physical_ms(self.end_version)}_{cf}.sst")


@dataclass
class _Chunk:
    """The SSTs of one chunk, opened per CF on its first record."""

    target: RegionBackup
    start_key: bytes
    options: Options
    limiter: RateLimiter
    builders: dict[str, SstBuilder] = field(default_factory=dict)
    sums: dict[str, RunningChecksum] = field(default_factory=dict)
    counted_bytes: int = 0
    unmetered: int = 0  # record bytes written and not yet charged (the limiter is charged per MiB)

    def add(self, entry: BackupEntry) -> None:
        builders = self.builders
        written = 0
        for cf, key, value in entry.records():
            builder = builders.get(cf)
            if builder is None:
                builder = builders[cf] = SstBuilder(
                    self.target.root / self.target.relative_name(self.start_key, cf), self.options)
            builder.add(DATA_PREFIX + key, value)  # TiKV's backup files hold data keys
            written += len(key) + len(value)
        counted = self.sums.get(entry.counted_in)
        if counted is None:
            counted = self.sums[entry.counted_in] = RunningChecksum()
        counted.add(entry.raw_key, entry.value)
        self.counted_bytes += len(entry.raw_key) + len(entry.value)
        self.unmetered += written
        if self.unmetered >= METER_BYTES:
            self.limiter.consume(self.unmetered)
            self.unmetered = 0

    def finish(self) -> list[brpb_pb2.File]:
        self.limiter.consume(self.unmetered)
        self.unmetered = 0
        return [self._finish_cf(cf) for cf in FILE_ORDER if cf in self.builders]

    def _finish_cf(self, cf: str) -> brpb_pb2.File:
        checksum = self.sums.get(cf) or RunningChecksum()
        return _finished(self.target, self.start_key, cf, self.builders.pop(cf), checksum.crc64xor,
                         checksum.total_kvs, checksum.total_bytes)

    def abort(self) -> None:
        for builder in self.builders.values():
            builder.abort()


def write_region_files(target: RegionBackup, entries: Iterable[BackupEntry], options: Options,
                       limiter: RateLimiter, roll_bytes: int = ROLL_BYTES) -> list[brpb_pb2.File]:
    """Write the (ascending) entries to SSTs; no entries, no files."""
    chunks: list[list[brpb_pb2.File]] = []
    chunk: _Chunk | None = None
    try:
        for entry in entries:
            if chunk is None:
                chunk = _Chunk(target, target.start_key if not chunks else entry.raw_key, options, limiter)
            chunk.add(entry)
            if chunk.counted_bytes >= roll_bytes:
                chunks.append(chunk.finish())
                chunk = None
        if chunk is not None:
            chunks.append(chunk.finish())
            chunk = None
    finally:
        if chunk is not None:
            chunk.abort()
    return _tiled(chunks, target.end_key)


def write_raw_region_files(target: RegionBackup, data_pairs: Iterable[tuple[bytes, bytes]], options: Options,
                           limiter: RateLimiter, roll_bytes: int = ROLL_BYTES) -> list[brpb_pb2.File]:
    """write_region_files for raw KV in one tight loop: the (data key, value) pairs go to the SST
    as stored, and the counters and the limiter are kept in locals (a raw backup writes every key
    of the store; per-key objects and calls doubled its CPU). Same files, byte for byte."""
    chunks: list[list[brpb_pb2.File]] = []
    builder: SstBuilder | None = None
    try:
        for data_key, value in data_pairs:
            if builder is None:
                start = target.start_key if not chunks else data_key[1:]
                builder = SstBuilder(target.root / target.relative_name(start, CF), options)
                put, crc, kvs, counted, metered = builder.add, 0, 0, 0, 0
            put(data_key, value)
            key = data_key[1:]
            crc ^= crc64.xz(key + value)
            kvs += 1
            counted += len(key) + len(value)
            if counted - metered >= METER_BYTES:
                limiter.consume(counted - metered)
                metered = counted
            if counted >= roll_bytes:
                limiter.consume(counted - metered)
                chunks.append([_finished(target, start, CF, builder, crc, kvs, counted)])
                builder = None
        if builder is not None:
            limiter.consume(counted - metered)
            chunks.append([_finished(target, start, CF, builder, crc, kvs, counted)])
            builder = None
    finally:
        if builder is not None:
            builder.abort()
    return _tiled(chunks, target.end_key)


def _finished(target: RegionBackup, start: bytes, cf: str, builder: SstBuilder, crc: int, kvs: int,
              counted: int) -> brpb_pb2.File:
    """Finish a chunk's SST of cf and describe it as backup.File (end_key: _tiled)."""
    done = builder.finish()
    return brpb_pb2.File(name=target.relative_name(start, cf), sha256=done.sha256, start_key=start,
                         start_version=target.start_version, end_version=target.end_version, crc64xor=crc,
                         total_kvs=kvs, total_bytes=counted, cf=cf, size=done.size)


def _tiled(chunks: list[list[brpb_pb2.File]], end_key: bytes) -> list[brpb_pb2.File]:
    """Each chunk's files end where the next chunk starts, the last at the region's overlap end."""
    ends = [following[0].start_key for following in chunks[1:]] + [end_key]
    for files, end in zip(chunks, ends):
        for f in files:
            f.end_key = end
    return [f for files in chunks for f in files]
