"""br_common.lock_resolver.async_commit_ts: an async-commit txn's fate from its secondaries'
CheckSecondaryLocks answers, as client-go's asyncResolveData.addKeys decides it."""
from __future__ import annotations

import pytest

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.lock_resolver import LockResolveError, NotAsyncCommit, async_commit_ts


def locked(*min_commit_ts: int, start: int = 10, use_async_commit: bool = True) -> pb.CheckSecondaryLocksResponse:
    return pb.CheckSecondaryLocksResponse(locks=[
        pb.LockInfo(key=b"k%d" % i, lock_version=start, min_commit_ts=ts, use_async_commit=use_async_commit)
        for i, ts in enumerate(min_commit_ts)])


def test_every_lock_present_commits_at_the_largest_min_commit_ts() -> None:
    assert async_commit_ts(10, 15, [(2, locked(12, 17)), (1, locked(16))]) == 17
    assert async_commit_ts(10, 20, [(1, locked(12))]) == 20  # the primary's counts too
    assert async_commit_ts(10, 15, []) == 15  # no secondaries


def test_a_committed_key_decides_the_commit_ts() -> None:
    committed = pb.CheckSecondaryLocksResponse(commit_ts=30)
    assert async_commit_ts(10, 15, [(2, locked(12, 17)), (3, committed)]) == 30
    with pytest.raises(LockResolveError, match="below a min_commit_ts"):
        async_commit_ts(10, 15, [(1, locked(40)), (1, committed)])


def test_a_missing_or_rolled_back_key_rolls_the_txn_back() -> None:
    assert async_commit_ts(10, 15, [(2, locked(12, 17)), (2, pb.CheckSecondaryLocksResponse())]) == 0
    assert async_commit_ts(10, 15, [(2, locked(12))]) == 0  # fewer locks than keys


def test_contradictions_and_errors_are_refused() -> None:
    with pytest.raises(LockResolveError, match="both committed and rolled back"):
        async_commit_ts(10, 15, [(1, pb.CheckSecondaryLocksResponse(commit_ts=30)),
                                 (1, pb.CheckSecondaryLocksResponse())])
    with pytest.raises(LockResolveError, match="answered txn 11"):
        async_commit_ts(10, 15, [(1, locked(12, start=11))])
    with pytest.raises(LockResolveError, match="boom"):
        async_commit_ts(10, 15, [(1, pb.CheckSecondaryLocksResponse(error=pb.KeyError(abort="boom")))])


def test_an_ordinary_lock_means_the_txn_fell_back_to_2pc() -> None:
    with pytest.raises(NotAsyncCommit):
        async_commit_ts(10, 15, [(1, locked(12, use_async_commit=False))])
