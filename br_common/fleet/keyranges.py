"""Key-range arithmetic over KeyRange ([start, end), end b"" = unbounded).

Used by the agent (what part of its task is not covered) and the coordinator (what part of
the key space is still missing; do the completed pieces tile it exactly once).
"""
from __future__ import annotations

from collections.abc import Iterable

from br_common.fleet.messages import KeyRange


def end_sort_key(end: bytes) -> tuple[int, bytes]:
    """Sort key of an exclusive end: b"" (unbounded) after every real key."""
    return (1, b"") if end == b"" else (0, end)


def end_before(a: bytes, b: bytes) -> bool:
    """a < b for exclusive ends."""
    return end_sort_key(a) < end_sort_key(b)


def min_end(a: bytes, b: bytes) -> bytes:
    return a if end_before(a, b) else b


def key_before_end(key: bytes, end: bytes) -> bool:
    """key < end, end b"" unbounded."""
    return end == b"" or key < end


def contains(outer: KeyRange, inner: KeyRange) -> bool:
    return outer.start <= inner.start and not end_before(outer.end, inner.end)


def is_empty(r: KeyRange) -> bool:
    return not key_before_end(r.start, r.end)


def intersect(a: KeyRange, b: KeyRange) -> KeyRange | None:
    start = max(a.start, b.start)
    end = min_end(a.end, b.end)
    piece = KeyRange(start=start, end=end)
    return None if is_empty(piece) else piece


def subtract(whole: KeyRange, pieces: Iterable[KeyRange]) -> list[KeyRange]:
    """The parts of `whole` no piece covers, in key order."""
    gaps: list[KeyRange] = []
    cursor: bytes | None = whole.start  # None: covered up to the unbounded end
    for piece in sorted(pieces, key=lambda p: p.start):
        clipped = intersect(piece, whole)
        if clipped is None:
            continue
        if cursor is None:
            break
        if clipped.start > cursor:
            gaps.append(KeyRange(start=cursor, end=clipped.start))
        if clipped.end == b"":
            cursor = None
        else:
            cursor = max(cursor, clipped.end)
    if cursor is not None and key_before_end(cursor, whole.end):
        gaps.append(KeyRange(start=cursor, end=whole.end))
    return gaps


def tiling_problem(whole: KeyRange, pieces: Iterable[KeyRange]) -> str:
    """"" if the pieces cover `whole` exactly once (sorted, contiguous, no overlap), else what is wrong."""
    ordered = sorted(pieces, key=lambda p: p.start)
    cursor = whole.start
    for piece in ordered:
        if cursor is None:
            return f"{piece.label()} lies after the unbounded end"
        if piece.start < cursor:
            return f"{piece.label()} overlaps the piece before it"
        if piece.start > cursor:
            return f"gap {KeyRange(start=cursor, end=piece.start).label()}"
        if is_empty(piece):
            return f"empty piece {piece.label()}"
        cursor = None if piece.end == b"" else piece.end
    if cursor is None:
        return "" if whole.end == b"" else f"pieces run past the end {whole.label()}"
    if whole.end == b"" or cursor < whole.end:
        return f"gap {KeyRange(start=cursor, end=whole.end).label()}"
    return "" if cursor == whole.end else f"pieces run past the end {whole.label()}"
