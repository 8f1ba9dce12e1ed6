"""Resolving the locks a read at a ts runs into, as BR's backup does (lockResolver.ResolveLocks):
TiKV never resolves locks itself, it answers KeyError.locked and leaves it to the client.

For a lock of txn T on key k, seen by a reader at read_ts:
  1. KvCheckTxnStatus on T's primary (routed by the primary's region through PD) with the PD's
     current ts: TiKV rolls T back if its TTL has run out (or its primary lock is gone), and
     otherwise reports it alive; caller_start_ts = read_ts lets TiKV push T's min_commit_ts past
     the reader, after which the lock no longer blocks the read (TiKV's check_ts_conflict_si).
  2. T committed (commit_version) or rolled back: KvResolveLock(T, commit_version) on k's region
     commits or rolls back every lock T left there, so a retried read sees either all of T's
     writes in it or none.
  3. T alive: nothing is touched; the caller waits out the TTL (wait_ms) and retries.
A reader therefore never sees half of a transaction: only the primary decides T.
Async-commit locks (whose fate needs CheckSecondaryLocks) are waited out, never resolved here.

Routing and retries are RawKVClient's, with keys located at their encoding (Key::from_raw),
so this works against a real TiKV (plain kvproto RPCs, no devcluster call).
"""
from __future__ import annotations

from dataclasses import dataclass

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.tikv_client import RawKVClient, RawKVError
from br_common.tso import physical_ms
from br_common.txn_codec import encode_bytes


class LockResolveError(RawKVError):
    """TiKV refused a resolve step (a KeyError); the message says which."""


@dataclass(frozen=True)
class Resolution:
    resolved: bool  # the lock no longer blocks the read: retry now
    wait_ms: int  # alive: how long until its TTL runs out (retry after)
    detail: str  # for logs and the retried range's reason

    @classmethod
    def waiting(cls, wait_ms: int, detail: str) -> "Resolution":
        return cls(False, max(0, wait_ms), detail)


class LockResolver(RawKVClient):
    """Thread-safe; one per process is enough (it caches regions and channels)."""

    def resolve(self, lock: pb.LockInfo, read_ts: int) -> Resolution:
        name = f"lock of txn {lock.lock_version} on key {lock.key.hex()}"
        if lock.use_async_commit:
            return Resolution.waiting(self._ms_left(lock, lock.lock_ttl), f"{name}: async commit, waiting it out")
        status = self._check_primary(lock, read_ts)
        if status.action == pb.MinCommitTSPushed:
            return Resolution(True, 0, f"{name}: pushed past the read ts")
        if status.lock_ttl:
            return Resolution.waiting(self._ms_left(lock, status.lock_ttl), f"{name}: its txn is alive")
        self._resolve_in_region(lock, status.commit_version)
        outcome = f"committed at {status.commit_version}" if status.commit_version else "rolled back"
        return Resolution(True, 0, f"{name}: {outcome}")

    def _check_primary(self, lock: pb.LockInfo, read_ts: int) -> pb.CheckTxnStatusResponse:
        now = self.pd.tso()
        _, response = self._call_at(encode_bytes(lock.primary_lock), "KvCheckTxnStatus",
                                    lambda ctx, _region: pb.CheckTxnStatusRequest(
                                        context=ctx, primary_key=lock.primary_lock, lock_ts=lock.lock_version,
                                        caller_start_ts=read_ts, current_ts=now, rollback_if_not_exist=True))
        if response.HasField("error"):
            raise LockResolveError(f"CheckTxnStatus of txn {lock.lock_version}: {_key_error(response.error)}")
        return response

    def _resolve_in_region(self, lock: pb.LockInfo, commit_version: int) -> None:
        """No keys: every lock of the txn in the region (TiKV scans it), not one key per retry."""
        _, response = self._call_at(encode_bytes(lock.key), "KvResolveLock",
                                    lambda ctx, _region: pb.ResolveLockRequest(
                                        context=ctx, start_version=lock.lock_version, commit_version=commit_version))
        if response.HasField("error"):
            raise LockResolveError(f"ResolveLock of txn {lock.lock_version}: {_key_error(response.error)}")

    def _ms_left(self, lock: pb.LockInfo, ttl_ms: int) -> int:
        return physical_ms(lock.lock_version) + ttl_ms - physical_ms(self.pd.tso())


def _key_error(error: pb.KeyError) -> str:
    return error.abort or error.retryable or str(error).replace("\n", " ")
