"""The restore's rolling verification: each checkpointed range at once, the rest and the gaps at the end."""
from __future__ import annotations

import threading

import pytest

from br_common.checksum import Checksum
from br_common.fleet.jobs import RangeRecord
from br_common.fleet.messages import FileInfo, KeyRange
from br_coordinator.errors import CommandError
from br_coordinator.restore_verify import NoVerifier, RollingVerifier


def rng(start: bytes, end: bytes) -> KeyRange:
    return KeyRange(start=start, end=end)


def record(start: bytes, end: bytes, crc: int) -> RangeRecord:
    files = [FileInfo(name=f"{start!r}-{cf}", crc64xor=crc if cf == "write" else 0, total_kvs=1, total_bytes=10,
                      cf=cf) for cf in ("write", "default")]
    return RangeRecord(range=rng(start, end), files=files)


class Target:
    """The target cluster's checksum per range, and which ranges were asked (from any thread)."""

    def __init__(self, sums: dict[tuple[bytes, bytes], Checksum]) -> None:
        self.sums = sums
        self.asked: list[tuple[bytes, bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, r: KeyRange) -> Checksum:
        with self._lock:
            self.asked.append((r.start, r.end))
        return self.sums.get((r.start, r.end), Checksum())


RESTORED = {(b"a", b"c"): Checksum(crc64xor=1, total_kvs=2, total_bytes=20),
            (b"c", b"m"): Checksum(crc64xor=2, total_kvs=2, total_bytes=20)}
RECORDS = [record(b"a", b"c", 1), record(b"c", b"m", 2)]


def test_submitted_records_and_the_gaps_are_checked() -> None:
    target = Target(RESTORED)
    verifier = RollingVerifier(target, concurrency=2)
    for r in RECORDS:
        verifier.submit(r)
    assert verifier.finish([rng(b"", b"")], RECORDS) == 4  # two records, the gaps before and after them
    verifier.close()
    assert sorted(target.asked) == [(b"", b"a"), (b"a", b"c"), (b"c", b"m"), (b"m", b"")]


def test_records_of_an_earlier_run_are_checked_at_the_end() -> None:
    target = Target(RESTORED)
    verifier = RollingVerifier(target, concurrency=2)
    verifier.submit(RECORDS[1])
    assert verifier.finish([rng(b"a", b"m")], RECORDS) == 2
    assert sorted(target.asked) == [(b"a", b"c"), (b"c", b"m")]  # each once, no gap


def test_a_mismatch_names_the_range() -> None:
    verifier = RollingVerifier(Target(RESTORED), concurrency=2)
    verifier.submit(record(b"a", b"c", 7))
    with pytest.raises(CommandError, match="checksum mismatch in range"):
        verifier.finish([rng(b"a", b"m")], [record(b"a", b"c", 7), RECORDS[1]])


def test_keys_in_a_gap_fail_the_check() -> None:
    stray = Target(RESTORED | {(b"m", b""): Checksum(crc64xor=9, total_kvs=1, total_bytes=3)})
    verifier = RollingVerifier(stray, concurrency=2)
    with pytest.raises(CommandError, match="checksum mismatch"):
        verifier.finish([rng(b"a", b"")], RECORDS)


def test_no_verifier_checks_nothing() -> None:
    verifier = NoVerifier()
    verifier.submit(RECORDS[0])
    assert verifier.finish([rng(b"", b"")], RECORDS) == 0
    verifier.close()
