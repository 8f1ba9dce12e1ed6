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

An async-commit txn (TiKV answers its primary lock with use_async_commit, never rolling it back
by TTL nor pushing it) is decided as client-go's resolveAsyncCommitLock does, once the primary's
TTL has run out (before: waited out like any live txn): KvCheckSecondaryLocks on every
secondary, grouped by region; if every lock is there, T commits at the largest min_commit_ts
(its client may already have told its user so); if one is committed, at that key's commit ts; if
one is missing (TiKV then writes a protected rollback, so it can never be prewritten) T is rolled
back. Then KvResolveLock on T's keys in each region. A secondary holding an ordinary lock means T
fell back to 2PC: its primary is checked again with force_sync_commit and decides as above.

Routing and retries are RawKVClient's, with keys located at their encoding (Key::from_raw),
so this works against a real TiKV (plain kvproto RPCs, no devcluster call).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.pd_client import RegionInfo
from br_common.tikv_client import RawKVClient, RawKVError
from br_common.tso import physical_ms
from br_common.txn_codec import encode_bytes


class LockResolveError(RawKVError):
    """TiKV refused a resolve step (a KeyError); the message says which."""


class NotAsyncCommit(LockResolveError):
    """CheckSecondaryLocks found an ordinary lock: the txn fell back to 2PC."""


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
        status = self._check_primary(lock, read_ts)
        if status.lock_ttl and status.lock_info.use_async_commit:
            wait_ms = self._ms_left(lock, status.lock_ttl)
            if wait_ms > 0:
                return Resolution.waiting(wait_ms, f"{name}: async commit, its txn is alive")
            try:
                return self._resolve_async(lock, status.lock_info, name)
            except NotAsyncCommit:
                status = self._check_primary(lock, read_ts, force_sync_commit=True)
        return self._resolve_2pc(lock, status, name)

    def _resolve_2pc(self, lock: pb.LockInfo, status: pb.CheckTxnStatusResponse, name: str) -> Resolution:
        if status.action == pb.MinCommitTSPushed:
            return Resolution(True, 0, f"{name}: pushed past the read ts")
        if status.lock_ttl:
            return Resolution.waiting(self._ms_left(lock, status.lock_ttl), f"{name}: its txn is alive")
        self._resolve_in_region(lock, status.commit_version)
        outcome = f"committed at {status.commit_version}" if status.commit_version else "rolled back"
        return Resolution(True, 0, f"{name}: {outcome}")

    def _resolve_async(self, lock: pb.LockInfo, primary: pb.LockInfo, name: str) -> Resolution:
        """The primary's TTL ran out: the secondaries decide (raises NotAsyncCommit)."""
        start_ts, secondaries = lock.lock_version, list(primary.secondaries)
        checks = self._per_region(secondaries, "KvCheckSecondaryLocks", lambda ctx, keys: (
            pb.CheckSecondaryLocksRequest(context=ctx, keys=keys, start_version=start_ts)))
        commit_ts = async_commit_ts(start_ts, primary.min_commit_ts, [(len(k), r) for k, r in checks])
        resolved = self._per_region([lock.primary_lock, *secondaries], "KvResolveLock", lambda ctx, keys: (
            pb.ResolveLockRequest(context=ctx, start_version=start_ts, commit_version=commit_ts, keys=keys)))
        for _, response in resolved:
            if response.HasField("error"):
                raise LockResolveError(f"ResolveLock of async-commit txn {start_ts}: {_key_error(response.error)}")
        outcome = f"committed at {commit_ts}" if commit_ts else "rolled back"
        return Resolution(True, 0, f"{name}: async commit, {outcome} ({len(secondaries)} secondaries checked)")

    def _per_region(self, keys: Sequence[bytes], method: str, build: Callable[[pb.Context, list[bytes]], Any],
                    located: list[tuple[RegionInfo, list[bytes]]] | None = None) -> list[tuple[list[bytes], Any]]:
        """(keys, response) for each region holding some of keys (or each group already located),
        in one request per region; keys of a region that answered a region error are grouped again
        (client-go does too)."""
        done: list[tuple[list[bytes], Any]] = []
        pending = located if located is not None else self._by_region(keys)
        attempt = 0
        while pending:
            retry, reason = [], ""
            for info, group in pending:
                response, why = self._send(info, method, build(self._context(info), group))
                if response is None:
                    retry, reason = retry + group, why
                else:
                    done.append((group, response))
            if retry:
                self._backoff(attempt, f"{method} of {len(retry)} keys", reason)
                attempt += 1
            pending = self._by_region(retry)
        return done

    def _by_region(self, keys: Iterable[bytes]) -> list[tuple[RegionInfo, list[bytes]]]:
        """The keys (each once, in order) grouped by the region holding their encoding."""
        groups: dict[int, tuple[RegionInfo, list[bytes]]] = {}
        for key in dict.fromkeys(keys):
            info = self.regions.locate(encode_bytes(key))
            groups.setdefault(info.id, (info, []))[1].append(key)
        return list(groups.values())

    def _check_primary(self, lock: pb.LockInfo, read_ts: int,
                       force_sync_commit: bool = False) -> pb.CheckTxnStatusResponse:
        now = self.pd.tso()
        _, response = self._call_at(encode_bytes(lock.primary_lock), "KvCheckTxnStatus",
                                    lambda ctx, _region: pb.CheckTxnStatusRequest(
                                        context=ctx, primary_key=lock.primary_lock, lock_ts=lock.lock_version,
                                        caller_start_ts=read_ts, current_ts=now, rollback_if_not_exist=True,
                                        force_sync_commit=force_sync_commit))
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


def async_commit_ts(start_ts: int, primary_min_commit_ts: int,
                    checks: Iterable[tuple[int, pb.CheckSecondaryLocksResponse]]) -> int:
    """The fate of an async-commit txn from its secondaries' CheckSecondaryLocks answers (keys
    asked, answer) per region, as client-go's asyncResolveData.addKeys: a commit ts, 0 for a
    rollback. Fewer locks than keys means a key is decided: its commit ts (0: rolled back),
    which every such answer must agree on and which is at least every lock's min_commit_ts;
    all locks present: the largest min_commit_ts, the primary's included."""
    min_commit_ts, decided = primary_min_commit_ts, set()
    for expected, response in checks:
        if response.HasField("error"):
            raise LockResolveError(f"CheckSecondaryLocks of txn {start_ts}: {_key_error(response.error)}")
        if len(response.locks) < expected:
            decided.add(response.commit_ts)
        for info in response.locks:
            if info.lock_version != start_ts:
                raise LockResolveError(f"CheckSecondaryLocks of txn {start_ts} answered txn {info.lock_version}")
            if not info.use_async_commit:
                raise NotAsyncCommit(f"txn {start_ts} holds an ordinary lock on {info.key.hex()}")
            min_commit_ts = max(min_commit_ts, info.min_commit_ts)
    if not decided:
        return min_commit_ts
    if len(decided) > 1:
        raise LockResolveError(f"async-commit txn {start_ts} is both committed and rolled back: {sorted(decided)}")
    commit_ts = decided.pop()
    if commit_ts and commit_ts < min_commit_ts:
        raise LockResolveError(f"async-commit txn {start_ts} committed at {commit_ts}, below a min_commit_ts "
                               f"of {min_commit_ts}")
    return commit_ts


def _key_error(error: pb.KeyError) -> str:
    return error.abort or error.retryable or str(error).replace("\n", " ")
