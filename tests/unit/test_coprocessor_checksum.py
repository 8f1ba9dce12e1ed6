"""coprocessor_service.checksum_ranges: the tp 105 checksum of txn data at a ts, as BR's backup
files count it (raw user key ‖ value), with locks reported and the rewrite rule applied."""
from __future__ import annotations


import pytest

from br_common.checksum import Checksum, RunningChecksum
from br_common.kvproto import checksum_pb2, kvrpcpb_pb2 as pb
from br_devcluster.store.checksum_scan import add_visible
from br_devcluster.store.coprocessor_service import LockedError, checksum_ranges
from br_devcluster.store.txn_reader import TxnReader
from br_devcluster.store.txn_reads import scan_entries
from tests.doubles import MemoryCFs
from tests.mvcc_histories import random_history, txn


def test_checksum_at_a_ts_counts_what_a_read_at_ts_sees() -> None:
    cfs = MemoryCFs()
    txn(cfs, 10, 11, {b"t1_a": b"1", b"t1_b": b"L" * 300, b"u": b"x"})
    txn(cfs, 20, 21, {b"t1_a": b"2", b"t1_b": None})
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
    txn(cfs, 10, None, {b"k": b"v"})
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
    cfs, ts = random_history(seed)
    for at in range(0, max(ts, 40) + 5, 2):
        fast = RunningChecksum()
        add_visible(TxnReader(cfs).cfs, b"", None, at, fast)
        assert fast.result() == _general(cfs, at), at
