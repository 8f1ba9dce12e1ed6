"""Writing SST files with rocksdict (raw mode); reading is br_common.sst_files.

Files are written under a temporary name and renamed, so a reader never sees half a file.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

from rocksdict import DBCompressionType, Options, SstFileWriter

from br_common.kvproto import brpb_pb2
from br_common.sst_files import SstError, read_sst  # noqa: F401 - the devcluster reads SSTs as the agent does

_COMPRESSION = {
    brpb_pb2.UNKNOWN: DBCompressionType.zstd,  # BR's default
    brpb_pb2.LZ4: DBCompressionType.lz4,
    brpb_pb2.SNAPPY: DBCompressionType.snappy,
    brpb_pb2.ZSTD: DBCompressionType.zstd,
}


def sst_options(compression_type: int = brpb_pb2.ZSTD, level: int = 0) -> Options:
    factory = _COMPRESSION.get(compression_type)
    if factory is None:
        raise SstError(f"unknown compression type {compression_type}")
    options = Options(raw_mode=True)
    options.set_compression_type(factory())
    if level:
        options.set_compression_options(-14, level, 0, 0)  # window bits, level, strategy, dict bytes
    return options


@dataclass
class FinishedSst:
    path: Path
    size: int
    sha256: bytes


class SstBuilder:
    """One SST being written: add() keys strictly ascending, then finish() or abort()."""

    def __init__(self, path: Path, options: Options) -> None:
        self.path = path
        # unique: a retried request may write the same file while the first try still runs
        self._tmp = path.with_name(f".{path.name}.{uuid4().hex}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = SstFileWriter(options)
        self._writer.open(str(self._tmp))
        # add(key, value): the writer's own setter, no Python frame (a backup adds every key)
        self.add: Callable[[bytes, bytes], None] = self._writer.__setitem__

    def finish(self) -> FinishedSst:
        try:
            self._writer.finish()
            with open(self._tmp, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").digest()
            size = self._tmp.stat().st_size
            os.replace(self._tmp, self.path)
        except Exception:
            self.abort()
            raise
        return FinishedSst(self.path, size, digest)

    def abort(self) -> None:
        self._tmp.unlink(missing_ok=True)
