"""The store's engine as its services use it: TiKV's column families (cf_engine) with raw KV as
TiKV's API V1 stores it (b"z" + raw key in the request's CF, the value as given, no version).

API V1 raw data is unversioned, so a raw read at a timestamp reads the current data (as TiKV's
raw reads and raw backup do); the read_ts arguments stay for the raw service's call sites.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from br_common.txn_codec import TS_MAX
from br_devcluster.store.cf_engine import CFEngine, CFSnapshot, EngineError
from br_devcluster.store.txn_reader import CF_DEFAULT, Modify

__all__ = ["Engine", "EngineError", "RawWrite", "Snapshot", "open_engine"]

# (raw key, value); value None deletes the key
RawWrite = tuple[bytes, bytes | None]

LAYOUT = "tikv-cf-v1"


class Engine(CFEngine):
    """CFEngine plus the raw KV (API V1) view."""

    def write(self, entries: Iterable[RawWrite], cf: str = CF_DEFAULT) -> None:
        """Apply raw puts/deletes to cf atomically (one write batch)."""
        self.apply(Modify(cf, key, value) for key, value in entries)

    def snapshot(self, cf: str = CF_DEFAULT) -> "Snapshot":
        return Snapshot(self.snapshot_cfs((cf,)), cf)


class Snapshot:
    """Raw KV reads of one CF over a consistent view; read_ts is ignored (V1 is unversioned)."""

    def __init__(self, cfs: CFSnapshot, cf: str = CF_DEFAULT) -> None:
        self._cfs = cfs
        self._cf = cf

    def get(self, key: bytes, read_ts: int = TS_MAX) -> bytes | None:
        return self._cfs.get(self._cf, key)

    def scan(self, start: bytes, end: bytes, read_ts: int = TS_MAX) -> Iterator[tuple[bytes, bytes]]:
        """Pairs in [start, end) ascending (end b"" = unbounded)."""
        return self._cfs.iterate(self._cf, start, end or None)

    def scan_reverse(self, upper: bytes, lower: bytes, read_ts: int = TS_MAX) -> Iterator[tuple[bytes, bytes]]:
        """Pairs in [lower, upper) descending (upper b"" = unbounded)."""
        return self._cfs.iterate(self._cf, lower, upper or None, reverse=True)


def open_engine(db_dir: Path, marker: Path) -> Engine:
    """Open the store's DB, refusing one written in an older layout (the marker says which)."""
    found = marker.read_text().strip() if marker.exists() else None
    if found is None and db_dir.exists() and any(db_dir.iterdir()):
        found = "devcluster-mvcc (no layout marker)"
    if found is not None and found != LAYOUT:
        raise EngineError(f"{db_dir} holds data in the {found} layout, this store needs {LAYOUT}: "
                          f"remove the data dir (or recreate the cluster with `br-devcluster up`)")
    engine = Engine(db_dir)
    if found is None:
        marker.write_text(LAYOUT + "\n")
    return engine
