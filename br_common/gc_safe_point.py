"""A read at a timestamp must be after PD's GC safe point, and the client checks it.

TiKV does not refuse a read below the GC safe point (tikv/tikv#5687, "reject requests with ts <
safe_point", was never merged): it answers with whatever versions are left, which may be none. TiDB
and BR check the safe point themselves before reading at a ts, and so does every br-fleet read at
a ts: `br backup` at --backupts/--timeago or resumed, `br-devcluster checksum --ts`. The devcluster's
stores answer as TiKV does, so nothing here relies on a devcluster-only refusal.
"""
from __future__ import annotations

from typing import Protocol

from br_common.tso import ts_time


class StaleReadError(ValueError):
    """The ts is not after the GC safe point: its versions may be gone (one line, with what to do)."""


class _HasSafePoint(Protocol):
    def gc_safe_point(self) -> int: ...


def require_after_safe_point(pd: _HasSafePoint, ts: int, what: str, hint: str) -> None:
    """StaleReadError unless `ts` (named `what` in the message) is after PD's GC safe point; the
    safe point itself is refused too, as BR does."""
    safe_point = pd.gc_safe_point()
    if ts <= safe_point:
        raise StaleReadError(f"{what} {ts} ({ts_time(ts)}) is not after the GC safe point {safe_point} "
                             f"({ts_time(safe_point)}): its versions may be gone; {hint}")
