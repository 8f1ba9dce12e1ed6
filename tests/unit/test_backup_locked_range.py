"""The agent's answer to a store's kv_error.locked (br_agent.backup_tasks): the lock is resolved
through br_common.lock_resolver and the piece handed back to the coordinator to retry."""
from __future__ import annotations

import pytest

from br_agent import backup_tasks
from br_common.backupmeta.kind import BackupKind
from br_common.fleet import messages as m
from br_common.kvproto import brpb_pb2, kvrpcpb_pb2 as pb
from br_common.lock_resolver import Resolution
from br_common.tikv_client import RawKVError

LOCK = pb.LockInfo(primary_lock=b"p", lock_version=5, key=b"k", lock_ttl=3000)
PIECE = m.KeyRange(start=b"a", end=b"z")


class _Resolver:
    def __init__(self, answer: Resolution | Exception) -> None:
        self.answer, self.seen = answer, []

    def resolve(self, lock: pb.LockInfo, read_ts: int) -> Resolution:
        self.seen.append((lock.lock_version, read_ts))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class _Env:
    def __init__(self, resolver: _Resolver) -> None:
        self._resolver = resolver

    def lock_resolver(self) -> _Resolver:
        return self._resolver


def _task() -> m.BackupRangeTask:
    return m.BackupRangeTask(job_id="j", attempt="a", cluster_id=1, store_id=1, range=PIECE, backup_ts=42,
                             kind=BackupKind.TXN, storage=m.StorageSpec(url="local:///tmp/x"))


def _locked() -> brpb_pb2.Error:
    return brpb_pb2.Error(msg="locked", kv_error=pb.KeyError(locked=LOCK))


def test_a_resolved_lock_sends_the_piece_back_at_once() -> None:
    resolver = _Resolver(Resolution(True, 0, "lock of txn 5: rolled back"))
    gap = backup_tasks._error_range(_Env(resolver), _task(), PIECE, _locked())
    assert resolver.seen == [(5, 42)]  # resolved for a read at the backup ts
    assert (gap.range, gap.error_kind, gap.reason) == (PIECE, "region", "lock of txn 5: rolled back")


def test_a_live_lock_is_waited_on_briefly_then_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    slept = []
    monkeypatch.setattr(backup_tasks.time, "sleep", slept.append)
    gap = backup_tasks._error_range(_Env(_Resolver(Resolution.waiting(60_000, "alive"))), _task(), PIECE, _locked())
    assert gap.error_kind == "retryable" and slept == [backup_tasks.LOCK_WAIT_CAP]


def test_a_failed_resolve_is_retryable() -> None:
    gap = backup_tasks._error_range(_Env(_Resolver(RawKVError("PD down"))), _task(), PIECE, _locked())
    assert gap.error_kind == "retryable" and "PD down" in gap.reason
