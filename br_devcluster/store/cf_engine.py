"""The store's RocksDB in TiKV's layout: column families default, lock and write, every key
stored as a data key (b"z" + key, br_common.data_keys), as TiKV's engine holds it.

Callers (txn_reader, percolator, the raw KV view, replication) use keys *without* the prefix,
as TiKV's MVCC layer does; this module adds it on the way in and strips it on the way out.

Consistent reads: rocksdict's Snapshot cannot read column families, but an iterator pins an
implicit snapshot when it is created. A CFSnapshot therefore creates a small pool of iterators
per CF at once (the caller holds the store's write lock for those microseconds) and serves
every point read and range read of one command from that pool.

Point reads: a seek lands on the next *live* key, stepping over every deleted one after it, and
a transactional load leaves a tombstone per key in the lock CF (each commit deletes its locks),
so seek-based gets grow with the data. While no write has begun since the snapshot was taken
(the engine's WriteClock says so before and after the read), the live DB is the snapshot, and a
get is a real point read (memtable and bloom filters), as TiKV's snapshot.get_cf is; otherwise
it falls back to the pinned iterator's seek.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rocksdict import IngestExternalFileOptions, Options, Rdict, RdictIter, WriteBatch

from br_common.data_keys import DATA_PREFIX, data_key
from br_common.sst_files import table_properties
from br_devcluster.store.txn_reader import CF_DEFAULT, CF_LOCK, CF_WRITE, DeleteRange, Modify
from br_devcluster.store.write_versions import WriteVersions
from br_devcluster.store.written_keys import WrittenKeys

CFS = (CF_DEFAULT, CF_LOCK, CF_WRITE)
# b"z" + 1 (TiKV's DATA_MAX_KEY): above every data key, the end of an unbounded range
DATA_MAX_KEY = bytes([DATA_PREFIX[0] + 1])
# iterators per CF in one snapshot: the deepest nesting of reads in txn_reads/percolator is 2
# (a scan's key stream plus a point read or version walk of the same CF inside it)
POOL_SIZE = 3


class WriteClock:
    """Writes begun and ended; a snapshot taken while none was in flight stays equal to the
    live DB for as long as none has begun since (a seqlock: begun is bumped before the write)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.begun = 0
        self._ended = 0

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._lock:
            self.begun += 1
        try:
            yield
        finally:
            with self._lock:
                self._ended += 1

    def quiet(self) -> int | None:
        """The writes begun so far when none is in flight, else None."""
        with self._lock:
            return self.begun if self.begun == self._ended else None


class EngineError(RuntimeError):
    """The database cannot be opened (locked by another store, corrupt); the message says which."""


class CFEngine:
    """Thread-safe (RocksDB is); close() after the gRPC server stopped."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.create_missing_column_families(True)
        families = {cf: Options(raw_mode=True) for cf in CFS if cf != CF_DEFAULT}
        try:
            self._db = Rdict(str(path), options, column_families=families)
        except Exception as exc:  # rocksdict raises plain Exception (e.g. the LOCK held by another store)
            raise EngineError(f"cannot open RocksDB at {path}: {exc}") from None
        self._handles = {cf: self._db.get_column_family_handle(cf) for cf in CFS}
        self._families = {cf: self._db if cf == CF_DEFAULT else self._db.get_column_family(cf) for cf in CFS}
        self._closed = threading.Event()
        self.written = WrittenKeys()  # what the split checker looks at
        self.write_versions = WriteVersions(empty=self._cf_empty(CF_WRITE))  # what the GC loop looks at
        self._clock = WriteClock()

    def _cf_empty(self, cf: str) -> bool:
        it = self._families[cf].iter()
        it.seek_to_first()
        return not it.valid()

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            for family in self._families.values():
                if family is not self._db:
                    family.close()  # a CF object keeps the DB (and its LOCK file) open
            self._families.clear()
            self._handles.clear()
            self._db.close()

    # --- writes ------------------------------------------------------------------------------
    def apply(self, modifies: Iterable[Modify], ranges: Iterable[DeleteRange] = ()) -> None:
        """Apply range deletions, then the puts/deletes, atomically (one write batch over all CFs)."""
        modifies = list(modifies)
        batch = WriteBatch(raw_mode=True)
        for cf, start, end in ranges:
            batch.delete_range(data_key(start), _data_end(end), self._handle(cf))
        handles, put, delete = self._handles, batch.put, batch.delete  # locals: one pass per change
        for cf, key, value in modifies:
            handle = handles[cf] if cf in handles else self._handle(cf)
            if value is None:
                delete(DATA_PREFIX + key, handle)
            else:
                put(DATA_PREFIX + key, value, handle)
        if not batch.is_empty():
            with self._clock.writing():
                self._db.write(batch)
            self.written.record(modifies)
            self.write_versions.record(modifies)

    def ingest(self, cf: str, paths: list[Path], grown: list[tuple[bytes, int]] | None = None) -> None:
        """Ingest SSTs of data keys into cf. The files are moved in (hard links, as TiKV ingests;
        RocksDB copies across filesystems): the caller still removes its names for them. `grown`
        is (first key, bytes) per file, for the split checker (None: unknown, every region grew)."""
        options = IngestExternalFileOptions()
        options.set_move_files(True)
        with self._clock.writing():
            self._families[self._cf(cf)].ingest_external_file([str(p) for p in paths], options)
        if grown is None:
            self.written.record_everything()
        else:
            self.written.record_sizes(grown)
        if cf == CF_WRITE:
            self.write_versions.record_unknown()

    def size_estimate(self, start: bytes, end: bytes) -> int:
        """About how many bytes (key + value, every CF) [start, end) holds (end b"": unbounded), from
        metadata alone, as TiKV's approximate region size: every SST overlapping the range counts
        whole, its size scaled by the engine's raw/stored ratio, plus every memtable. Never much
        below the truth; far above it when the range holds a slice of large files (a bulk load's)."""
        low, high = data_key(start), _data_end(end or None)
        stored = sum(f["size"] for f in self._db.live_files() if f["start_key"] < high and f["end_key"] >= low)
        memtables = sum(family.property_int_value("rocksdb.cur-size-all-mem-tables") or 0
                        for family in self._families.values())
        return int(stored * self._raw_per_stored_byte()) + memtables

    def _raw_per_stored_byte(self) -> float:
        """Raw key + value bytes per data block byte over every CF's files (at least 1): the files'
        metadata does not say which CF a file is of, so one ratio for the engine's mix."""
        raw = stored = 0
        for family in self._families.values():
            props = table_properties(family.property_value("rocksdb.aggregated-table-properties") or "")
            raw += int(props.get("raw key size", 0)) + int(props.get("raw value size", 0))
            stored += int(props.get("data block size", 0))
        return max(1.0, raw / stored) if stored else 1.0

    def drop_range(self, start: bytes, end: bytes) -> None:
        """Forget everything of every CF in [start, end) (end b"": unbounded), e.g. a moved region."""
        self.apply((), [DeleteRange(cf, start, end or None) for cf in CFS])

    # --- reads -------------------------------------------------------------------------------
    def snapshot_cfs(self, cfs: tuple[str, ...] = CFS) -> "CFSnapshot":
        """A consistent view of the CFs named (take it under the store's write lock)."""
        quiet = self._clock.quiet()
        pools = {cf: [self._families[self._cf(cf)].iter() for _ in range(POOL_SIZE)] for cf in cfs}
        return CFSnapshot(pools, _LiveReads(self._families, self._clock, quiet) if quiet is not None else None)

    def _cf(self, cf: str) -> str:
        if cf not in self._families:
            raise ValueError(f"unknown column family {cf!r}")
        return cf

    def _handle(self, cf: str):  # noqa: ANN202 - rocksdict's ColumnFamily handle
        return self._handles[self._cf(cf)]


class _LiveReads:
    """Point reads of the live DB, valid for a snapshot while no write has begun since it."""

    def __init__(self, families: dict[str, Rdict], clock: WriteClock, quiet: int) -> None:
        self._families = families
        self._clock = clock
        self._quiet = quiet

    def get(self, cf: str, target: bytes) -> tuple[bool, bytes | None]:
        """(True, value) when the live DB still is the snapshot, else (False, None)."""
        if self._clock.begun != self._quiet:
            return False, None
        value = self._families[cf].get(target)
        return self._clock.begun == self._quiet, value


class CFSnapshot:
    """txn_reader.CFReader over one point in time; keys without the data prefix."""

    def __init__(self, pools: dict[str, list[RdictIter]], live: _LiveReads | None = None) -> None:
        self._pools = pools
        self._live = live

    def _pool(self, cf: str) -> list[RdictIter]:
        """The CF's idle iterators (pop one, append it back when done; plain calls: every
        point and range read of a command borrows one)."""
        pool = self._pools.get(cf)
        if pool is None:
            raise ValueError(f"unknown column family {cf!r}")
        if not pool:
            raise RuntimeError(f"more than {POOL_SIZE} nested reads of CF {cf} on one snapshot")
        return pool

    def get(self, cf: str, key: bytes) -> bytes | None:
        target = data_key(key)
        if self._live is not None and cf in self._pools:
            still, value = self._live.get(cf, target)
            if still:
                return value
            self._live = None  # a write began: the pinned iterators from now on
        pool = self._pool(cf)
        it = pool.pop()
        try:
            it.seek(target)
            if it.valid() and it.key() == target:
                return it.value()
        finally:
            pool.append(it)
        return None

    def iterate(self, cf: str, lower: bytes, upper: bytes | None, reverse: bool = False,
                data_keys: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with lower <= key < upper (upper None: to the end), descending if reverse. Keys
        come without the b"z" prefix, or as stored with data_keys (a backup SST holds them so)."""
        low, high = data_key(lower), _data_end(upper)
        skip = 0 if data_keys else len(DATA_PREFIX)
        pool = self._pool(cf)
        it = pool.pop()
        try:
            if reverse:
                yield from _backward(it, low, high, skip)
            else:
                yield from _forward(it, low, high, skip)
        finally:
            pool.append(it)

    def entries(self, start: bytes, end: bytes) -> Iterator[Modify]:
        """Every key of every CF in [start, end) (end b"": unbounded): a region's full copy."""
        for cf in CFS:
            for key, value in self.iterate(cf, start, end or None):
                yield Modify(cf, key, value)


def _forward(it: RdictIter, low: bytes, high: bytes, skip: int) -> Iterator[tuple[bytes, bytes]]:
    it.seek(low)
    while it.valid():
        key = it.key()
        if key >= high:
            return
        yield key[skip:], it.value()
        it.next()


def _backward(it: RdictIter, low: bytes, high: bytes, skip: int) -> Iterator[tuple[bytes, bytes]]:
    it.seek_for_prev(high)
    while it.valid():
        key = it.key()
        if key < low:
            return
        if key < high:
            yield key[skip:], it.value()
        it.prev()


def _data_end(end: bytes | None) -> bytes:
    """The exclusive data-key bound of an MVCC-level end (None or b"": past every data key)."""
    return data_key(end) if end else DATA_MAX_KEY
