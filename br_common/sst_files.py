"""Reading SST files with rocksdict (raw mode), for the agent and the devcluster alike.

rocksdict has no SST reader: read_sst ingests a copy into a scratch DB and iterates that (the
file itself is left untouched). Keys come back as stored: TiKV's files hold data keys
(br_common.data_keys).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from rocksdict import BlockBasedOptions, IngestExternalFileOptions, Options, Rdict, ReadOptions

READAHEAD = 2 << 20  # files are read front to back
_INTERNAL_KEY_SUFFIX = 8  # RocksDB's raw key size counts each key's 8-byte seqno/type trailer


class SstError(RuntimeError):
    """An SST that cannot be read or written; the message names the file."""


class SstSummary(NamedTuple):
    """What an SST's metadata tells without reading its pairs (keys as stored)."""

    first_key: bytes
    last_key: bytes
    entries: int
    deletions: int
    key_bytes: int  # the stored keys' bytes
    value_bytes: int


def sst_summary(path: Path, scratch_parent: Path) -> SstSummary | None:
    """First and last key, entry count and byte sizes from the file's metadata and table
    properties (no pass over its pairs); None for a file without entries."""
    with _scratch_db(path, scratch_parent) as db:
        files = db.live_files()
        if not files:
            return None
        [meta] = files
        props = table_properties(db.property_value("rocksdb.aggregated-table-properties") or "")
        entries = int(meta["num_entries"])
        key_bytes = int(props.get("raw key size", 0)) - _INTERNAL_KEY_SUFFIX * entries
        return SstSummary(bytes(meta["start_key"]), bytes(meta["end_key"]), entries, int(meta["num_deletions"]),
                          key_bytes, int(props.get("raw value size", 0)))


def table_properties(text: str) -> dict[str, str]:
    """RocksDB's "name=value; name=value" property string."""
    pairs = (item.split("=", 1) for item in text.split(";") if "=" in item)
    return {name.strip(): value.strip() for name, value in pairs}


@contextmanager
def read_sst(path: Path, scratch_parent: Path) -> Iterator[Iterator[tuple[bytes, bytes]]]:
    """Yields an iterator over the file's (key, value) pairs in key order; cleans up after."""
    with _scratch_db(path, scratch_parent) as db:
        yield _pairs(db)


@contextmanager
def _scratch_db(path: Path, scratch_parent: Path) -> Iterator[Rdict]:
    """A throwaway DB holding only the file (ingested); removed after."""
    scratch_parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="sst-read-", dir=scratch_parent))
    db = None
    try:
        db = Rdict(str(scratch / "db"), _scratch_options())
        source, move = _linked(path, scratch)
        ingest = IngestExternalFileOptions()
        ingest.set_move_files(move)
        try:
            db.ingest_external_file([str(source)], ingest)
        except Exception as exc:  # noqa: BLE001 - rocksdict raises plain Exception for IO errors and corruption
            raise SstError(f"cannot read SST {path}: {exc}") from None
        yield db
    finally:
        if db is not None:
            db.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _linked(path: Path, scratch: Path) -> tuple[Path, bool]:
    """A hard link the scratch DB may take over (no copy of the file's bytes), else the file itself
    to be copied (another filesystem, or a missing file: ingest reports that)."""
    link = scratch / "input.sst"
    try:
        os.link(path, link)
    except OSError:
        return path, False
    return link, True


def _scratch_options() -> Options:
    """A DB that is only read once, front to back: no block cache (RocksDB's default keeps 32 MB per
    DB, and an agent checks several files at once) and a small write buffer (nothing is written)."""
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    table = BlockBasedOptions()
    table.disable_cache()
    options.set_block_based_table_factory(table)
    options.set_write_buffer_size(1 << 20)
    return options


def _pairs(db: Rdict) -> Iterator[tuple[bytes, bytes]]:
    read = ReadOptions()
    read.fill_cache(False)
    read.set_readahead_size(READAHEAD)
    it = db.iter(read)
    it.seek_to_first()
    while it.valid():
        yield it.key(), it.value()
        it.next()
    del it
