"""The split checker: regions split by size, as TiKV's split-check worker splits them.

Every interval, for each region this store leads whose data grew since its last check (or that
it never checked), sum the region's data over the CFs (key + value of every engine entry, as
TiKV's size checker) and, when the sum exceeds region-split-size, ask PD to split it at the
user key that halves it. The split key is a user-key boundary, as TiKV's split observer makes it
(strip_timestamp_if_exists): a versioned transactional key (memcomparable encoding + 8-byte ts)
loses its ts, so a key's versions, its write and default entries and its lock stay in one region.
Unlike TiKV, a raw key is rounded up to an encoded key (see user_key_boundary): every region
bound stays an encoded key, as PD's pre-split ones (br_devcluster.key_layout), so pingcap's
TransactionClient keeps working on a cluster that also holds raw data. Regions are PD metadata
over the store's one engine, so PD's split is the whole split: no data moves.

A region whose approximate size (br_devcluster.store.cf_engine.CFEngine.size_estimate: SST
metadata, no pass over the data) is under half the split size is not scanned, as TiKV's size
checker trusts its approximate size. The sums read a snapshot without the write lock: a size is
an estimate anyway, and any key the scan returns is a valid boundary.
"""
from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Iterable, Iterator

from br_common.pd_client import PDClient, PDError, RegionInfo
from br_common.redaction import show_key
from br_common.txn_codec import U64_SIZE, CodecError, decode_bytes, encode_bytes
from br_devcluster.store.cf_engine import CFS, CFEngine, CFSnapshot
from br_devcluster.store.key_space import smallest_raw_at_or_after
from br_devcluster.store.written_keys import Written

log = logging.getLogger(__name__)

DEFAULT_REGION_SPLIT_SIZE = 96 * 1024 * 1024  # TiKV's coprocessor.region-split-size
DEFAULT_INTERVAL = 10.0  # TiKV's split-region-check-tick-interval

Entry = tuple[bytes, int]  # (engine key, bytes it takes: key + value)


# --- the split key (pure) ------------------------------------------------------------------------
def user_key_boundary(key: bytes) -> bytes:
    """Where a split at `key` may fall: the smallest memcomparable encoding at or above the key
    without its ts. A versioned transactional key (encoding + 8-byte ts) gives its encoded user
    key, so all its versions and its lock stay right of the boundary; a raw key gives the smallest
    encoded key above it (only raw keys sharing its first 8 bytes fall on its left), because
    transactional clients decode every region bound and fail on one that is no encoding."""
    return encode_bytes(smallest_raw_at_or_after(_without_ts(key)))


def _without_ts(key: bytes) -> bytes:
    """TiKV's strip_timestamp_if_exists: memcomparable bytes followed by exactly 8 bytes."""
    try:
        _, rest = decode_bytes(key)
    except CodecError:
        return key
    return key[:-U64_SIZE] if len(rest) == U64_SIZE else key


def total_size(entries: Iterable[Entry]) -> int:
    return sum(size for _, size in entries)


def half_split_key(entries: Iterable[Entry], total: int, start_key: bytes, end_key: bytes) -> bytes | None:
    """The first user-key boundary at or after the entry holding the midpoint of `total` that
    is inside the region (above its start and first user key, below its end); None if there is
    none (a single user key, raw keys sharing their first 8 bytes). `entries` ascend by key."""
    first: bytes | None = None
    seen = 0
    for key, size in entries:
        if first is None:
            first = user_key_boundary(key)
        if 2 * seen + size >= total:  # boundaries cost a decode: only from the midpoint on
            boundary = user_key_boundary(key)
            if boundary > max(first, start_key) and (not end_key or boundary < end_key):
                return boundary
        seen += size
    return None


def plan_split(entries: Callable[[], Iterable[Entry]], split_size: int,
               region: tuple[bytes, bytes]) -> tuple[int, bytes | None]:
    """(region size, split key or None): split only a region above split_size. `entries` is called
    once per pass over the data (two passes: the total, then the half point)."""
    size = total_size(entries())
    if size <= split_size:
        return size, None
    return size, half_split_key(entries(), size, *region)


# --- reading a region ---------------------------------------------------------------------------
def region_entries(snapshot: CFSnapshot, start: bytes, end: bytes, stop: threading.Event) -> Iterator[Entry]:
    """Every CF's entries in [start, end) in engine-key order; ends early once stop is set."""
    streams = [snapshot.iterate(cf, start, end or None) for cf in CFS]
    for count, (key, value) in enumerate(heapq.merge(*streams, key=lambda pair: pair[0])):
        if count % 4096 == 0 and stop.is_set():
            return
        yield key, len(key) + len(value)


# --- the loop -----------------------------------------------------------------------------------
class SplitCheckLoop:
    """A thread that checks the regions this store leads every interval."""

    def __init__(self, engine: CFEngine, pd: PDClient, store_id: int, split_size: int,
                 interval: float = DEFAULT_INTERVAL) -> None:
        self._engine = engine
        self._pd = pd
        self._store_id = store_id
        self._split_size = split_size
        self._interval = interval
        self._sizes: dict[int, int] = {}  # region id -> size at its last check
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="split-check", daemon=True)
        self.splits = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_once()
            except PDError as exc:
                log.warning("split check skipped: %s", exc)
            except Exception:  # noqa: BLE001 - a failed pass must not end the loop
                log.exception("split check failed")

    def run_once(self) -> int:
        """One pass over the led regions that grew; returns how many splits PD made."""
        led = [r for r in self._pd.scan_regions() if r.leader_store_id == self._store_id]
        written = self._engine.written.take()  # after PD answered: a failed pass loses no growth
        self._sizes = {r.id: self._sizes[r.id] for r in led if r.id in self._sizes}
        made = sum(self._check(region) for region in led if self._may_exceed(region, written))
        self.splits += made
        return made

    def _may_exceed(self, info: RegionInfo, written: Written) -> bool:
        """Never checked, or it grew and the growth may take it past the split size."""
        grown = written.bytes_in(info.region.start_key, info.region.end_key)
        last = self._sizes.get(info.id)
        return last is None or (grown > 0 and last + grown > self._split_size)

    def _check(self, info: RegionInfo) -> int:
        region = info.region
        estimate = self._engine.size_estimate(region.start_key, region.end_key)
        if 2 * estimate <= self._split_size:  # far below even by the files' metadata: no scan (TiKV's
            self._sizes[info.id] = estimate    # approximate size, which gates its scans the same way)
            return 0
        snapshot = self._engine.snapshot_cfs()
        size, key = plan_split(lambda: region_entries(snapshot, region.start_key, region.end_key, self._stop),
                               self._split_size, (region.start_key, region.end_key))
        if self._stop.is_set():
            return 0
        self._sizes[info.id] = size
        if key is None:
            return 0
        new_ids = self._pd.split_regions([key])
        self._sizes.pop(info.id, None)  # both halves are checked again on the next pass
        log.info("region %d (%d bytes > %d) split at %s: new regions %s", info.id, size, self._split_size,
                 show_key(key), new_ids)
        return len(new_ids)
