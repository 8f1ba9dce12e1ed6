"""The store's RocksDB (rocksdict, raw mode) holding MVCC-encoded keys; reads at a timestamp.

Consistent reads use a RocksDB iterator, which pins an implicit snapshot when it is created
(rocksdict 0.3's Snapshot.iter() does not apply its snapshot, so Snapshot is not used).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from rocksdict import IngestExternalFileOptions, Options, Rdict, RdictIter, WriteBatch

from br_devcluster.store import mvcc

# (encoded key, encoded value); value None deletes the encoded key itself (GC, follower deletes)
RawWrite = tuple[bytes, bytes | None]

_DELETE_BATCH = 10_000


class EngineError(RuntimeError):
    """The database cannot be opened (locked by another store, corrupt); the message says which."""


class Engine:
    """Thread-safe (RocksDB is); close() after the gRPC server stopped."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        try:
            self._db = Rdict(str(path), options)
        except Exception as exc:  # rocksdict raises plain Exception (e.g. the LOCK held by another store)
            raise EngineError(f"cannot open RocksDB at {path}: {exc}") from None
        self._closed = threading.Event()

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._db.close()

    # --- writes ------------------------------------------------------------------------------
    def write(self, entries: Iterable[RawWrite]) -> None:
        """Apply all entries atomically (one write batch)."""
        batch = WriteBatch(raw_mode=True)
        for key, value in entries:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if not batch.is_empty():
            self._db.write(batch)

    def ingest(self, paths: list[Path]) -> None:
        """Ingest SSTs of encoded keys (copied: the caller removes its files)."""
        options = IngestExternalFileOptions()
        options.set_move_files(False)
        self._db.ingest_external_file([str(p) for p in paths], options)

    def drop_range(self, start: bytes, end: bytes) -> None:
        """Forget every version of the user keys in [start, end) (end b"" = unbounded)."""
        lower = mvcc.lower_bound(start)
        upper = mvcc.upper_bound(end)
        if upper is None:
            it = self._db.iter()
            it.seek_to_last()
            if not it.valid() or it.key() < lower:
                return
            upper = it.key() + b"\x00"  # just past the last key
        if lower < upper:
            self._db.delete_range(lower, upper)

    # --- reads -------------------------------------------------------------------------------
    def snapshot(self) -> "Snapshot":
        return Snapshot(self._db.iter())

    # --- GC ----------------------------------------------------------------------------------
    def gc(self, safe_point: int, stop: threading.Event | None = None) -> int:
        """Delete the versions no read at or after safe_point can see; returns how many.
        A set `stop` ends the pass early (shutdown)."""
        removed = 0
        batch: list[RawWrite] = []
        for key in gc_victims(self._db.iter(), safe_point, stop or threading.Event()):
            batch.append((key, None))
            if len(batch) >= _DELETE_BATCH:
                self.write(batch)
                removed += len(batch)
                batch.clear()
        self.write(batch)
        return removed + len(batch)


class Snapshot:
    """A point-in-time view. One scan at a time: each method moves the same iterator."""

    def __init__(self, it: RdictIter) -> None:
        self._it = it

    def get(self, user_key: bytes, read_ts: int) -> bytes | None:
        """The newest value of user_key with commit ts <= read_ts (None: absent or deleted)."""
        prefix = mvcc.memcomparable(user_key)
        self._it.seek(mvcc.encode_key(user_key, read_ts))
        if not self._it.valid():
            return None
        key = self._it.key()
        if key[: -mvcc.TS_BYTES] != prefix:
            return None
        return mvcc.decode_value(self._it.value())

    def scan(self, start: bytes, end: bytes, read_ts: int) -> Iterator[tuple[bytes, bytes]]:
        """Visible (user key, value) pairs in [start, end) ascending (end b"" = unbounded)."""
        return visible_forward(self._it, start, end, read_ts)

    def scan_reverse(self, upper: bytes, lower: bytes, read_ts: int) -> Iterator[tuple[bytes, bytes]]:
        """Visible pairs in [lower, upper) descending (upper b"" = unbounded)."""
        return visible_reverse(self._it, upper, lower, read_ts)

    def raw(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every encoded entry (all versions) of the user keys in [start, end)."""
        upper = mvcc.upper_bound(end)
        it = self._it
        it.seek(mvcc.lower_bound(start))
        while it.valid():
            key = it.key()
            if upper is not None and key >= upper:
                return
            yield key, it.value()
            it.next()


def visible_forward(it: RdictIter, start: bytes, end: bytes, read_ts: int) -> Iterator[tuple[bytes, bytes]]:
    upper = mvcc.upper_bound(end)
    newest_allowed = (mvcc.TS_MAX ^ read_ts).to_bytes(mvcc.TS_BYTES, "big")
    done: bytes | None = None  # memcomparable prefix whose visible version was decided
    it.seek(mvcc.lower_bound(start))
    while it.valid():
        key = it.key()
        if upper is not None and key >= upper:
            return
        prefix, ts_bytes = key[: -mvcc.TS_BYTES], key[-mvcc.TS_BYTES:]
        if prefix == done:
            it.next()
        elif ts_bytes < newest_allowed:  # newer than read_ts: jump to the newest version <= read_ts
            it.seek(prefix + newest_allowed)
        else:
            done = prefix
            value = mvcc.decode_value(it.value())
            if value is not None:
                yield mvcc.decode_key(key)[0], value
            it.next()


def visible_reverse(it: RdictIter, upper_key: bytes, lower_key: bytes,
                    read_ts: int) -> Iterator[tuple[bytes, bytes]]:
    """Backwards, a user key's versions come oldest first: its visible one is the last <= read_ts."""
    upper = mvcc.upper_bound(upper_key)
    lower = mvcc.lower_bound(lower_key)
    if upper is None:
        it.seek_to_last()
    else:
        it.seek_for_prev(upper)  # no encoded key equals a bare memcomparable prefix
    group: bytes | None = None
    candidate: tuple[bytes, bytes] | None = None  # (encoded key, encoded value)
    while it.valid():
        key = it.key()
        if key < lower:
            break
        prefix = key[: -mvcc.TS_BYTES]
        if prefix != group:
            yield from _visible_pair(candidate)
            group, candidate = prefix, None
        if mvcc.decode_key(key)[1] <= read_ts:
            candidate = (key, it.value())
        it.prev()
    yield from _visible_pair(candidate)


def _visible_pair(candidate: tuple[bytes, bytes] | None) -> Iterator[tuple[bytes, bytes]]:
    if candidate is None:
        return
    value = mvcc.decode_value(candidate[1])
    if value is not None:
        yield mvcc.decode_key(candidate[0])[0], value


def gc_victims(it: RdictIter, safe_point: int, stop: threading.Event) -> Iterator[bytes]:
    """Per user key: keep versions > safe_point and the newest <= safe_point unless a tombstone."""
    oldest_kept = (mvcc.TS_MAX ^ safe_point).to_bytes(mvcc.TS_BYTES, "big")
    group: bytes | None = None
    kept_one = False  # the newest version <= safe_point of this group was seen
    it.seek_to_first()
    while it.valid() and not stop.is_set():
        key = it.key()
        prefix = key[: -mvcc.TS_BYTES]
        if prefix != group:
            group, kept_one = prefix, False
        if key[-mvcc.TS_BYTES:] >= oldest_kept:  # commit ts <= safe_point
            if kept_one or it.value() == mvcc.TOMBSTONE:
                yield key
            kept_one = True
        it.next()
