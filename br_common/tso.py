"""TSO timestamps: physical milliseconds << 18 | logical, as PD composes them."""
from __future__ import annotations

from datetime import datetime

LOGICAL_BITS = 18
LOGICAL_MASK = (1 << LOGICAL_BITS) - 1


def compose(physical_ms: int, logical: int) -> int:
    return (physical_ms << LOGICAL_BITS) | logical


def physical_ms(ts: int) -> int:
    return ts >> LOGICAL_BITS


def logical(ts: int) -> int:
    return ts & LOGICAL_MASK


def from_unix_seconds(seconds: float) -> int:
    """The smallest timestamp at or after a wall-clock time (for --timeago and GC life time)."""
    return compose(int(seconds * 1000), 0)


def ts_time(ts: int) -> str:
    """A TSO timestamp as local wall-clock time with its zone, for operators reading summaries and errors."""
    moment = datetime.fromtimestamp(physical_ms(ts) / 1000).astimezone()
    return moment.isoformat(sep=" ", timespec="seconds")
