"""coprocessor_service.checksum_ranges: the tp 105 checksum of txn data at a ts, as BR's backup
files count it (raw user key ‖ value), with locks reported and the rewrite rule applied."""
from __future__ import annotations

import pytest

from br_common.checksum import Checksum
from br_common.kvproto import checksum_pb2, kvrpcpb_pb2 as pb
from br_devcluster.store import percolator
from br_devcluster.store.coprocessor_service import LockedError, checksum_ranges
from br_devcluster.store.txn_reader import TxnReader
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
