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

from rocksdict import IngestExternalFileOptions, Options, Rdict


class SstError(RuntimeError):
    """An SST that cannot be read or written; the message names the file."""


@contextmanager
def read_sst(path: Path, scratch_parent: Path) -> Iterator[Iterator[tuple[bytes, bytes]]]:
    """Yields an iterator over the file's (key, value) pairs in key order; cleans up after."""
    scratch_parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="sst-read-", dir=scratch_parent))
    db = None
    try:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        db = Rdict(str(scratch / "db"), options)
        source, move = _linked(path, scratch)
        ingest = IngestExternalFileOptions()
        ingest.set_move_files(move)
        try:
            db.ingest_external_file([str(source)], ingest)
        except Exception as exc:  # noqa: BLE001 - rocksdict raises plain Exception for IO errors and corruption
            raise SstError(f"cannot read SST {path}: {exc}") from None
        yield _pairs(db)
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


def _pairs(db: Rdict) -> Iterator[tuple[bytes, bytes]]:
    it = db.iter()
    it.seek_to_first()
    while it.valid():
        yield it.key(), it.value()
        it.next()
    del it
