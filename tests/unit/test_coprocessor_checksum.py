"""coprocessor_service.checksum_ranges: the tp 105 checksum of txn data at a ts, as BR's backup
files count it (raw user key ‖ value), with locks reported and the rewrite rule applied."""
from __future__ import annotations

import random

import pytest

from br_common.checksum import Checksum, RunningChecksum
from br_common.kvproto import checksum_pb2, kvrpcpb_pb2 as pb
from br_common.txn_codec import Write, WriteType, append_ts, decode_bytes, encode_bytes
from br_devcluster.store import percolator
from br_devcluster.store.checksum_scan import add_visible
from br_devcluster.store.coprocessor_service import LockedError, checksum_ranges
from br_devcluster.store.txn_reader import CF_LOCK, CF_WRITE, Modify, TxnReader
from br_devcluster.store.txn_reads import scan_entries
from tests.doubles import MemoryCFs


def _run(cfs: MemoryCFs, command, req) -> None:  # noqa: ANN001
    cfs.apply(command(TxnReader(cfs), req).modifies)


def _txn(cfs: MemoryCFs, start: int, commit: int | None, writes: dict[bytes, bytes | None]) -> None:
    mutations = [pb.Mutation(op=pb.Put if v is not None else pb.Del, key=k, value=v or b"") for k, v in writes.items()]
    _run(cfs, percolator.prewrite, pb.PrewriteRequest(mutations=mutations, primary_lock=mutations[0].key,
                                                      start_version=start, lock_ttl=1000))
    if commit is not None:
        _run(cfs, percolator.commit, pb.CommitRequest(start_version=start, commit_version=commit, keys=list(writes)))


def test_checksum_at_a_ts_counts_what_a_read_at_ts_sees() -> None:
    cfs = MemoryCFs()
    _txn(cfs, 10, 11, {b"t1_a": b"1", b"t1_b": b"L" * 300, b"u": b"x"})
    _txn(cfs, 20, 21, {b"t1_a": b"2", b"t1_b": None})
    reader = TxnReader(cfs)
    at_15 = checksum_ranges(reader, [(b"t", b"u")], 15, pb.Context())
    assert at_15 == Checksum().add_pairs([(b"t1_a", b"1"), (b"t1_b", b"L" * 300)])
    assert checksum_ranges(reader, [(b"t", b"u")], 25, pb.Context()) == Checksum().add_pairs([(b"t1_a", b"2")])
    everything = checksum_ranges(reader, [(b"", b"")], 25, pb.Context())
    assert everything == Checksum().add_pairs([(b"t1_a", b"2"), (b"u", b"x")])
    rule = checksum_pb2.ChecksumRewriteRule(old_prefix=b"t9_", new_prefix=b"t1_")
    assert checksum_ranges(reader, [(b"t", b"u")], 25, pb.Context(), rule) == Checksum().add_pairs([(b"t9_a", b"2")])


def test_a_lock_that_may_commit_before_ts_is_reported() -> None:
    cfs = MemoryCFs()
    _txn(cfs, 10, None, {b"k": b"v"})
    with pytest.raises(LockedError) as locked:
        checksum_ranges(TxnReader(cfs), [(b"", b"")], 12, pb.Context())
    assert locked.value.lock.key == b"k" and locked.value.lock.lock_version == 10
    assert checksum_ranges(TxnReader(cfs), [(b"", b"")], 9, pb.Context()) == Checksum()


def _general(cfs: MemoryCFs, ts: int) -> Checksum:
    """The forward scan's answer (scan_entries), which the lock-free fast path must equal."""
    total = Checksum()
    for raw_key, error, value in scan_entries(TxnReader(cfs), b"", None, ts, pb.Context()):
        assert error is None
        total = total.merge(Checksum().add_pairs([(raw_key, value)]))
    return total


@pytest.mark.parametrize("seed", range(8))
def test_the_lock_free_pass_equals_the_general_scan_at_every_ts(seed: int) -> None:
    rng = random.Random(seed)
    cfs = MemoryCFs()
    keys = [b"k%02d" % i for i in range(12)]
    ts = 10
    for _ in range(25):
        writes = {k: rng.choice([None, b"s" * rng.randint(0, 20), b"L" * rng.choice([255, 256, 400])])
                  for k in rng.sample(keys, rng.randint(1, 4))}
        _txn(cfs, ts, ts + 1 if rng.random() < 0.8 else None, writes)
        _roll_back_locks(cfs, ts)
        ts += 3
    # records a percolator run rarely leaves: Lock/Rollback records, a gc_fence, extra fields
    odd = [Write(WriteType.LOCK, 5), Write(WriteType.ROLLBACK, 6, b"p"), Write(WriteType.PUT, 7, b"fenced", gc_fence=50),
           Write(WriteType.PUT, 8, b"x", last_change_ts=3, versions_to_last_change=1),
           Write(WriteType.ROLLBACK, 9, has_overlapped_rollback=True, gc_fence=40)]
    for i, write in enumerate(odd):
        cfs.apply([Modify(CF_WRITE, append_ts(encode_bytes(b"odd%d" % i), 12 + i), write.to_bytes())])
    fenced = encode_bytes(b"fenced-rollback")  # a Put under a rollback whose gc_fence hides it from ts 30 on
    cfs.apply([Modify(CF_WRITE, append_ts(fenced, 12), Write(WriteType.PUT, 11, b"old").to_bytes()),
               Modify(CF_WRITE, append_ts(fenced, 20), Write(WriteType.ROLLBACK, 20, has_overlapped_rollback=True,
                                                              gc_fence=30).to_bytes())])
    for at in range(0, max(ts, 40) + 5, 2):
        fast = RunningChecksum()
        add_visible(TxnReader(cfs).cfs, b"", None, at, fast)
        assert fast.result() == _general(cfs, at), at


def _roll_back_locks(cfs: MemoryCFs, start: int) -> None:
    """An uncommitted txn: roll its locks back so the range is lock-free (the fast path's case)."""
    keys = [decode_bytes(k)[0] for k, _ in cfs.iterate(CF_LOCK, b"", None)]
    if keys:
        _run(cfs, percolator.batch_rollback, pb.BatchRollbackRequest(start_version=start, keys=keys))
