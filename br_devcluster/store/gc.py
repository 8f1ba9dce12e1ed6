"""The GC loop: every interval (or when triggered, e.g. by SIGUSR1) read PD's GC safe point
and drop the transactional versions no read at or after it can see (percolator's GC rule over the
whole engine in one forward pass of the write CF: every store collects its own copy, the result
depends only on the data and the safe point; raw API V1 data is unversioned and needs none). A
pass is skipped when nothing collectable can have appeared since the last one: the safe point has
not reached a version that pass left above it, and no write record at or below it was written
since (the engine's WriteVersions; a restore's ingest counts as any version). Then remove the
staged SSTs that will never be ingested (their region changed, as TiKV's import cleanup does, or
older than the staged TTL: see staging)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from br_common.pd_client import PDClient, PDError
from br_common.txn_codec import U64_SIZE, Write, WriteType, append_ts, ts_of
from br_devcluster.store import percolator
from br_devcluster.store.cf_engine import CFEngine
from br_devcluster.store.staging import Staging
from br_devcluster.store.txn_reader import CF_DEFAULT, CF_WRITE, Modify

log = logging.getLogger(__name__)

_DELETE_BATCH = 10_000
_PUT = bytes((WriteType.PUT,))


class GCResult(NamedTuple):
    removed: int  # keys deleted
    next_ts: int | None  # the lowest safe point at which what the pass left has garbage (None: none)


def collect_garbage(engine: CFEngine, safe_point: int, stop: threading.Event | None = None) -> int:
    """Apply percolator.gc at safe_point in batches; returns how many keys it deleted."""
    return gc_pass(engine, safe_point, stop).removed


def gc_pass(engine: CFEngine, safe_point: int, stop: threading.Event | None = None) -> GCResult:
    """percolator.gc's rule (gc_versions) over the whole write CF in one forward pass, applied in
    batches. GC only touches versions below the safe point, which no command writes, so no lock
    is needed. An interrupted pass answers next_ts 0 (garbage may be left at any safe point)."""
    modifies, next_ts = _plan(engine.snapshot_cfs((CF_WRITE,)).iterate(CF_WRITE, b"", None), safe_point)
    for start in range(0, len(modifies), _DELETE_BATCH):
        if stop is not None and stop.is_set():
            return GCResult(start, 0)
        engine.apply(modifies[start:start + _DELETE_BATCH])
    return GCResult(len(modifies), next_ts)


def _plan(pairs: Iterable[tuple[bytes, bytes]], safe_point: int) -> tuple[list[Modify], int | None]:
    """The deletions at safe_point, and the lowest safe point at which the rest has garbage."""
    modifies: list[Modify] = []
    next_ts: int | None = None
    for encoded, versions in _by_key(pairs):
        if len(versions) == 1 and versions[0][1][:1] == _PUT:
            continue  # a lone Put (every key of a load or a restore): nothing to drop, now or later
        dropped = percolator.gc_versions((ts, Write.parse(data)) for ts, data in versions if ts <= safe_point)
        gone = set()
        for commit_ts, write in dropped:
            gone.add(commit_ts)
            modifies.append(Modify(CF_WRITE, append_ts(encoded, commit_ts), None))
            if write.write_type == WriteType.PUT and write.short_value is None:
                modifies.append(Modify(CF_DEFAULT, append_ts(encoded, write.start_ts), None))
        key_next = _next_garbage([(ts, data) for ts, data in versions if ts not in gone])
        if key_next is not None and (next_ts is None or key_next < next_ts):
            next_ts = key_next
    return modifies, next_ts


def _next_garbage(versions: list[tuple[int, bytes]]) -> int | None:
    """The lowest safe point at which a key with these records (newest first) has garbage: a
    lone Delete/Lock/Rollback goes once below it, else the oldest goes once a newer one is."""
    if not versions:
        return None
    oldest_ts, oldest = versions[-1]
    if Write.parse(oldest).write_type != WriteType.PUT:
        return oldest_ts
    return versions[-2][0] if len(versions) > 1 else None


def _by_key(pairs: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, list[tuple[int, bytes]]]]:
    """(enc(key), [(commit_ts, write CF value)] newest first) per key of the write CF, in order."""
    encoded, versions = None, []
    for key, value in pairs:
        prefix = key[:-U64_SIZE]
        if prefix != encoded:
            if versions:
                yield encoded, versions
            encoded, versions = prefix, []
        versions.append((ts_of(key), value))
    if versions:
        yield encoded, versions


class GCLoop:
    def __init__(self, engine: CFEngine, pd: PDClient, interval: float, staging: Staging | None = None,
                 staged_ttl: float = 3600.0, store_id: int = 0) -> None:
        self._engine = engine
        self._pd = pd
        self._interval = interval
        self._staging = staging
        self._staged_ttl = staged_ttl
        self._store_id = store_id
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gc", daemon=True)
        self.passes = 0
        # the lowest safe point at which a pass can find garbage (None: none can, 0: any)
        self._pending: int | None = None

    def start(self) -> None:
        self._thread.start()

    def trigger(self) -> None:
        """Run a pass now (safe to call from a signal handler: it only sets an event)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.run_once()
            self.sweep_staging()

    def sweep_staging(self) -> int:
        """Remove stale and expired staged SSTs; returns how many (a failure is logged, the loop goes on)."""
        if self._staging is None:
            return 0
        try:
            stale = self._staging.remove_stale(self._pd, self._store_id) if self._store_id else 0
            return stale + self._staging.remove_expired(self._staged_ttl)
        except (PDError, OSError) as exc:
            log.warning("staged SST cleanup skipped: %s", exc)
            return 0

    def run_once(self) -> int:
        """One pass; returns the versions removed (0 when PD is unreachable)."""
        try:
            safe_point = self._pd.gc_safe_point()
        except PDError as exc:
            log.warning("GC skipped: %s", exc)
            return 0
        if safe_point == 0:
            return 0
        self._pending = _lower(self._pending, self._engine.write_versions.take())
        if self._pending is None or self._pending > safe_point:
            return 0  # nothing collectable can have appeared since the last pass: skip reading it all
        result = gc_pass(self._engine, safe_point, self._stop)
        self._pending = result.next_ts
        self.passes += 1
        log.info("GC pass %d at safe point %d removed %d versions", self.passes, safe_point, result.removed)
        return result.removed


def _lower(a: int | None, b: int | None) -> int | None:
    """The lower of two optional versions (None: no version)."""
    if a is None or b is None:
        return b if a is None else a
    return min(a, b)
