"""Verifying a restore by checksum while it runs: each restored range as soon as it is in.

Every checkpointed RangeRecord holds the counters of what the stores staged for its files (each
Download reports the checksum of what it staged), so the moment the book checkpoints a range its
target checksum can be compared, while other regions still download: the stores' checksum scan
then overlaps the agents' transfers instead of following them (on 1 GB of transactional data the
scan after the last ingest took 2.5 s of an 8 s restore). What is left at the end is small: the
records of earlier runs (a resumed job) and the gaps between records in every restored range,
which must be empty (keys there came from somewhere else; the old whole-range check caught them
too). A mismatch or a failed checksum fails the job at the end, as before, naming the range.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from br_common.checksum import Checksum, total_of
from br_common.fleet.jobs import RangeRecord
from br_common.fleet.keyranges import contains, subtract
from br_common.fleet.messages import KeyRange
from br_coordinator.errors import CommandError

log = logging.getLogger("br.restore")

RangeChecksum = Callable[[KeyRange], Checksum]


class RollingVerifier:
    """submit() each record as it is checkpointed; finish() checks the rest and raises on a mismatch."""

    def __init__(self, checksum: RangeChecksum, concurrency: int) -> None:
        self._checksum = checksum
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="verify")
        self._pending: list[tuple[KeyRange, Checksum, Future[Checksum]]] = []
        self._seen: set[tuple[bytes, bytes]] = set()

    def submit(self, record: RangeRecord) -> None:
        self._check(record.range, total_of(record.files))
        self._seen.add((record.range.start, record.range.end))

    def finish(self, ranges: Iterable[KeyRange], records: Iterable[RangeRecord]) -> int:
        """Check what submit() did not (earlier runs' records, the gaps), wait for every check;
        returns how many ranges were checked in all."""
        ranges, records = list(ranges), list(records)
        for record in records:
            if (record.range.start, record.range.end) not in self._seen:
                self.submit(record)
        for whole in ranges:
            for gap in subtract(whole, [r.range for r in records if contains(whole, r.range)]):
                self._check(gap, Checksum())
        for rng, want, future in self._pending:
            got = future.result()
            if got != want:
                raise CommandError(f"checksum mismatch in range {rng.label()}: the backup has {want}, "
                                   f"the restored cluster has {got}")
        return len(self._pending)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _check(self, rng: KeyRange, want: Checksum) -> None:
        self._pending.append((rng, want, self._pool.submit(self._checksum, rng)))


class NoVerifier(RollingVerifier):
    """--checksum=false or an incremental restore: nothing is checked."""

    def __init__(self) -> None:
        super().__init__(lambda rng: Checksum(), concurrency=1)

    def submit(self, record: RangeRecord) -> None:
        pass

    def finish(self, ranges: Iterable[KeyRange], records: Iterable[RangeRecord]) -> int:
        return 0
