"""Percolator's write side as TiKV serves it: each command reads one consistent view of the CFs
and returns (changes to apply as one batch, the kvrpcpb response). No I/O, no region checks:
the Kv* service checks the region, applies the batch atomically and answers.

Follows tikv src/storage/txn/actions/{prewrite,commit,cleanup,check_txn_status,gc}.rs and
commands/{rollback,resolve_lock,txn_heart_beat,check_secondary_locks,pessimistic_rollback}.rs
(../shared/reference/tikv-txn.md A1, A4). Async commit is served as TiKV does: the locks carry
use_async_commit (the primary's also the secondaries) and a min_commit_ts above the store's max
ts (which the service passes in), answered to the client; its fate is decided from the primary
and CheckSecondaryLocks. 1PC is refused the way TiKV may refuse it (one_pc_commit_ts = 0, the
keys get ordinary locks). Timestamps are TSO: ts >> 18 is the physical part in ms, which lock
TTLs count in.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import NamedTuple

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.tso import physical_ms
from br_common.txn_codec import (
    TS_MAX, Lock, LockType, Write, WriteType, encode_bytes, is_short_value,
)
from br_devcluster.store.txn_reader import (
    CF_DEFAULT, CF_LOCK, CF_WRITE, CommitRecord, DeleteRange, Modify, TxnReader, abort_error,
    default_key, lock_info, lock_key, locked_error, write_key,
)

_PREWRITE_LOCK_TYPES = {pb.Put: LockType.PUT, pb.Insert: LockType.PUT, pb.Del: LockType.DELETE,
                        pb.Lock: LockType.LOCK}
_CHECK = pb.PrewriteRequest.DO_PESSIMISTIC_CHECK
_CONSTRAINT = pb.PrewriteRequest.DO_CONSTRAINT_CHECK
_Reason = pb.WriteConflict


class Outcome(NamedTuple):
    """What a command does: the changes to apply (one atomic batch) and the answer to send."""

    modifies: list[Modify]
    response: object


class TxnBatch:
    """The changes of one command, in TiKV's layout (MVCC keys without 'z')."""

    def __init__(self) -> None:
        self.modifies: list[Modify] = []
        # record bytes by the fields that vary between the keys of one command: a txn's locks
        # (and its commit records) are byte for byte the same on every key without a short value
        self._records: dict[tuple, bytes] = {}

    def put_lock(self, raw_key: bytes, lock: Lock) -> None:
        self.modifies.append(Modify(CF_LOCK, lock_key(raw_key), lock.to_bytes()))

    def record(self, shape: tuple, build: Callable[[], Lock | Write]) -> bytes:
        """The bytes of the record build() makes, built once per shape within the command."""
        data = self._records.get(shape)
        if data is None:
            data = self._records[shape] = build().to_bytes()
        return data

    def put_lock_bytes(self, raw_key: bytes, data: bytes) -> None:
        self.modifies.append(Modify(CF_LOCK, lock_key(raw_key), data))

    def put_write_bytes(self, raw_key: bytes, commit_ts: int, data: bytes) -> None:
        self.modifies.append(Modify(CF_WRITE, write_key(raw_key, commit_ts), data))

    def unlock(self, raw_key: bytes) -> None:
        self.modifies.append(Modify(CF_LOCK, lock_key(raw_key), None))

    def put_write(self, raw_key: bytes, commit_ts: int, write: Write) -> None:
        self.modifies.append(Modify(CF_WRITE, write_key(raw_key, commit_ts), write.to_bytes()))

    def delete_write(self, raw_key: bytes, commit_ts: int) -> None:
        self.modifies.append(Modify(CF_WRITE, write_key(raw_key, commit_ts), None))

    def put_value(self, raw_key: bytes, start_ts: int, value: bytes) -> None:
        self.modifies.append(Modify(CF_DEFAULT, default_key(raw_key, start_ts), value))

    def delete_value(self, raw_key: bytes, start_ts: int) -> None:
        self.modifies.append(Modify(CF_DEFAULT, default_key(raw_key, start_ts), None))


def lock_expired(lock: Lock, current_ts: int) -> bool:
    """TTL (ms) counts from the lock's start ts, both in TSO physical milliseconds."""
    return physical_ms(lock.ts) + lock.ttl < physical_ms(current_ts)


def _conflict(start_ts: int, raw_key: bytes, primary: bytes, commit_ts: int, write: Write,
              reason: int) -> pb.KeyError:
    return pb.KeyError(conflict=pb.WriteConflict(
        start_ts=start_ts, conflict_ts=write.start_ts, key=raw_key, primary=primary,
        conflict_commit_ts=commit_ts, reason=reason))


# --- rollback helpers shared by cleanup, rollback, check_txn_status, resolve_lock ---------

def _make_rollback(start_ts: int, protected: bool, record: CommitRecord) -> Write | None:
    """A Rollback record, or the flag on another txn's commit at our start_ts (only if protected)."""
    if record.overlapped_write is None:
        return Write.rollback(start_ts, protected)
    if protected:
        return replace(record.overlapped_write, has_overlapped_rollback=True, gc_fence=record.gc_fence)
    return None


def _collapse_prev_rollback(reader: TxnReader, batch: TxnBatch, raw_key: bytes, start_ts: int) -> None:
    """Unprotected rollbacks are only needed until a newer one exists: delete the previous one."""
    found = reader.seek_write(raw_key, start_ts)
    if found and found[1].write_type == WriteType.ROLLBACK and not found[1].is_protected():
        batch.delete_write(raw_key, found[0])


def _rollback_lock(reader: TxnReader, batch: TxnBatch, raw_key: bytes, lock: Lock, collapse: bool) -> None:
    """Roll back this txn's lock on raw_key; protected for the primary of a pessimistic txn."""
    record = reader.txn_commit_record(raw_key, lock.ts)
    if record.kind == "none":
        if lock.short_value is None and lock.lock_type == LockType.PUT:
            batch.delete_value(raw_key, lock.ts)
        protected = lock.for_update_ts != 0 and raw_key == lock.primary
        write = _make_rollback(lock.ts, protected, record)
        if write is not None:
            batch.put_write(raw_key, lock.ts, write)
        if collapse:
            _collapse_prev_rollback(reader, batch, raw_key, lock.ts)
    batch.unlock(raw_key)


def _rollback_missing_lock(reader: TxnReader, batch: TxnBatch, raw_key: bytes, start_ts: int,
                           other_lock: Lock | None, protected: bool) -> CommitRecord:
    """No lock of the txn: leave a rollback record so that a late prewrite fails (unless decided)."""
    record = reader.txn_commit_record(raw_key, start_ts)
    if record.kind != "none":
        return record
    if not protected:
        _collapse_prev_rollback(reader, batch, raw_key, start_ts)
    if protected and record.overlapped_write is None and _may_commit_at(other_lock, start_ts):
        # its commit must keep our rollback visible (txn.rs mark_rollback_on_mismatching_lock)
        batch.put_lock(raw_key, replace(other_lock, rollback_ts=other_lock.rollback_ts + (start_ts,)))
    write = _make_rollback(start_ts, protected, record)
    if write is not None:
        batch.put_write(raw_key, start_ts, write)
    return record


def _may_commit_at(lock: Lock | None, ts: int) -> bool:
    """Only an async-commit txn computes its commit ts (>= min_commit_ts) and may pick ts;
    2PC commit timestamps come from TSO and never equal another txn's start ts."""
    return lock is not None and lock.use_async_commit and ts >= lock.min_commit_ts


def _cleanup_key(reader: TxnReader, batch: TxnBatch, raw_key: bytes, start_ts: int, current_ts: int,
                 protect_rollback: bool) -> pb.KeyError | int:
    """actions/cleanup.rs: roll the txn back on raw_key; its commit ts if it had committed, 0 if not."""
    lock = reader.load_lock(raw_key)
    if lock is not None and lock.ts == start_ts:
        if current_ts and not lock_expired(lock, current_ts):
            return locked_error(lock, raw_key)
        _rollback_lock(reader, batch, raw_key, lock, collapse=not protect_rollback)
        return 0
    record = _rollback_missing_lock(reader, batch, raw_key, start_ts, lock, protect_rollback)
    return record.commit_ts if record.is_committed() else 0


# --- prewrite -------------------------------------------------------------------------------

class PrewriteBatch(TxnBatch):
    """A prewrite's changes and, for async commit, the min_commit_ts each lock gets: above the
    store's max ts, the start ts and for_update_ts (actions/prewrite.rs async_commit_timestamps)."""

    def __init__(self, req: pb.PrewriteRequest, max_ts: int) -> None:
        super().__init__()
        self.async_commit = req.use_async_commit
        self.floor = max(max_ts, req.start_version, req.for_update_ts) + 1 if self.async_commit else 0
        self.min_commit_ts = 0  # the largest of the command's locks: what the client commits at

    def note(self, min_commit_ts: int) -> None:
        self.min_commit_ts = max(self.min_commit_ts, min_commit_ts)


def prewrite(reader: TxnReader, req: pb.PrewriteRequest, max_ts: int = 0) -> Outcome:
    """Locks every mutation or nothing: KeyIsLocked errors are collected (the client resolves
    them all), any other error aborts the command. With use_async_commit the answer carries the
    locks' largest min_commit_ts; above max_commit_ts (TiKV's CommitTsTooLarge) the command falls
    back to 2PC locks and answers 0. one_pc_commit_ts stays 0 (1PC refused)."""
    batch, locked = PrewriteBatch(req, max_ts), []
    for index, mutation in enumerate(req.mutations):
        error = _prewrite_key(reader, batch, req, index, mutation)
        if error is not None and error.HasField("locked"):
            locked.append(error)
        elif error is not None:
            return Outcome([], pb.PrewriteResponse(errors=[error]))
    if locked:
        return Outcome([], pb.PrewriteResponse(errors=locked))
    if batch.async_commit and req.max_commit_ts and batch.min_commit_ts > req.max_commit_ts:
        fallback = pb.PrewriteRequest()
        fallback.CopyFrom(req)
        fallback.use_async_commit = False
        del fallback.secondaries[:]
        return prewrite(reader, fallback)
    return Outcome(batch.modifies, pb.PrewriteResponse(min_commit_ts=batch.min_commit_ts))


def _pessimistic_action(req: pb.PrewriteRequest, index: int) -> int:
    if req.for_update_ts == 0 or index >= len(req.pessimistic_actions):
        return pb.PrewriteRequest.SKIP_PESSIMISTIC_CHECK
    return req.pessimistic_actions[index]


def _prewrite_key(reader: TxnReader, batch: PrewriteBatch, req: pb.PrewriteRequest, index: int,
                  mutation: pb.Mutation) -> pb.KeyError | None:
    """prewrite.rs: check the key's lock, then (without a lock of ours) newer versions and the
    data constraint, then write the lock; None also for a retry whose lock is already there."""
    raw_key = mutation.key
    if mutation.op not in _PREWRITE_LOCK_TYPES and mutation.op != pb.CheckNotExists:
        return abort_error(f"op {pb.Op.Name(mutation.op)} is not a prewrite mutation")
    locked_for_update = _pessimistic_action(req, index) == _CHECK
    lock = reader.load_lock(raw_key)
    if lock is not None:
        error = _check_own_lock(req, raw_key, lock, locked_for_update)
        if error is not None or lock.lock_type != LockType.PESSIMISTIC:
            if error is None and lock.use_async_commit:
                batch.note(lock.min_commit_ts)  # a retry answers the lock's own (prewrite.rs check_lock)
            return error  # another txn's lock, or ours already prewritten (a retry)
    elif locked_for_update:
        amend = _amend_pessimistic_lock(reader, req, raw_key)
        if amend is not True:
            return amend
    elif not (req.for_update_ts == 0 and req.skip_constraint_check):
        error = _check_newer_version(reader, req, raw_key, _pessimistic_action(req, index))
        if error is None and mutation.op in (pb.Insert, pb.CheckNotExists):
            error = _check_not_exists(reader, raw_key, req.start_version)
        if error is not None:
            return error
    if mutation.op != pb.CheckNotExists:
        _write_prewrite_lock(batch, req, mutation, lock)
    return None


def _check_own_lock(req: pb.PrewriteRequest, raw_key: bytes, lock: Lock,
                    locked_for_update: bool) -> pb.KeyError | None:
    """Another txn's lock is reported (with TTL 0 to a pessimistic txn: resolve it at once)."""
    if lock.ts != req.start_version and locked_for_update:
        return abort_error(f"PessimisticLockNotFound: start_ts {req.start_version} key {raw_key.hex()}")
    if lock.ts != req.start_version:
        error = locked_error(lock, raw_key)
        if req.for_update_ts:
            error.locked.lock_ttl = 0
        return error
    if lock.lock_type == LockType.PESSIMISTIC and req.for_update_ts == 0:
        return abort_error(f"LockTypeNotMatch: start_ts {req.start_version} key {raw_key.hex()}")
    return None


def _amend_pessimistic_lock(reader: TxnReader, req: pb.PrewriteRequest, raw_key: bytes) -> pb.KeyError | bool | None:
    """The pessimistic lock is missing: True (prewrite anyway) if the key has not changed since the
    txn started; None if the txn already committed it (a retry); else PessimisticLockNotFound."""
    found = reader.seek_write(raw_key)
    if found is None or found[0] < req.start_version:
        return True
    if reader.txn_commit_record(raw_key, req.start_version).is_committed():
        return None
    return abort_error(f"PessimisticLockNotFound: start_ts {req.start_version} key {raw_key.hex()}")


def _check_not_exists(reader: TxnReader, raw_key: bytes, start_ts: int) -> pb.KeyError | None:
    """Insert / CheckNotExists: the key must have no value visible at start_ts."""
    if reader.visible_write(raw_key, start_ts) is not None:
        return pb.KeyError(already_exist=pb.AlreadyExist(key=raw_key))
    return None


def _check_newer_version(reader: TxnReader, req: pb.PrewriteRequest, raw_key: bytes,
                         action: int) -> pb.KeyError | None:
    """Write conflicts against the newest record of the key (prewrite.rs check_for_newer_version)."""
    found = reader.seek_write(raw_key)
    if found is None:
        return None
    commit_ts, write = found
    start_ts = req.start_version
    if req.for_update_ts == 0 and commit_ts > start_ts:
        return _conflict(start_ts, raw_key, req.primary_lock, commit_ts, write, _Reason.Optimistic)
    if req.for_update_ts and action == _CONSTRAINT and commit_ts > start_ts:
        return _conflict(start_ts, raw_key, req.primary_lock, commit_ts, write, _Reason.LazyUniquenessCheck)
    if req.for_update_ts and action != _CONSTRAINT and commit_ts > req.for_update_ts:
        return _conflict(start_ts, raw_key, req.primary_lock, commit_ts, write, _Reason.NotLockedKeyConflict)
    if commit_ts == start_ts and (write.write_type == WriteType.ROLLBACK or write.has_overlapped_rollback):
        return _conflict(start_ts, raw_key, req.primary_lock, commit_ts, write, _Reason.SelfRolledBack)
    return None


def _write_prewrite_lock(batch: PrewriteBatch, req: pb.PrewriteRequest, mutation: pb.Mutation,
                         previous: Lock | None) -> None:
    """The lock (value inline when <= 255 bytes, else in the default CF at start_ts); async
    commit: its min_commit_ts raised to the batch's floor, the secondaries on the primary only."""
    lock_type = _PREWRITE_LOCK_TYPES[mutation.op]
    value = mutation.value if lock_type == LockType.PUT else None
    short_value = value if value is not None and is_short_value(value) else None
    if value is not None and short_value is None:
        batch.put_value(mutation.key, req.start_version, value)
    ttl, min_commit_ts = req.lock_ttl, req.min_commit_ts
    if previous is not None:  # our pessimistic lock: its TTL and min_commit_ts may have been pushed
        ttl, min_commit_ts = max(ttl, previous.ttl), max(min_commit_ts, previous.min_commit_ts)
    secondaries: tuple[bytes, ...] = ()
    if batch.async_commit:
        min_commit_ts = max(min_commit_ts, batch.floor)
        batch.note(min_commit_ts)
        secondaries = tuple(req.secondaries) if mutation.key == req.primary_lock else ()
    rollback_ts = previous.rollback_ts if previous else ()
    shape = (lock_type, ttl, short_value, min_commit_ts, secondaries, rollback_ts)  # the rest is the request's
    batch.put_lock_bytes(mutation.key, batch.record(shape, lambda: Lock(
        lock_type, req.primary_lock, req.start_version, ttl, short_value, for_update_ts=req.for_update_ts,
        txn_size=req.txn_size, min_commit_ts=min_commit_ts, use_async_commit=batch.async_commit,
        secondaries=secondaries, rollback_ts=rollback_ts)))


# --- commit ---------------------------------------------------------------------------------

def commit(reader: TxnReader, req: pb.CommitRequest) -> Outcome:
    """All keys or none; a key already committed by this txn is fine (a retried commit)."""
    if req.commit_version <= req.start_version:
        return Outcome([], pb.CommitResponse(error=abort_error(
            f"invalid txn tso: start_ts {req.start_version} commit_ts {req.commit_version}")))
    batch = TxnBatch()
    for raw_key in req.keys:
        error = _commit_key(reader, batch, raw_key, req.start_version, req.commit_version)
        if error is not None:
            return Outcome([], pb.CommitResponse(error=error))
    return Outcome(batch.modifies, pb.CommitResponse(commit_version=req.commit_version))


def _commit_key(reader: TxnReader, batch: TxnBatch, raw_key: bytes, start_ts: int,
                commit_ts: int) -> pb.KeyError | None:
    lock = reader.load_lock(raw_key)
    if lock is None or lock.ts != start_ts:
        if reader.txn_commit_record(raw_key, start_ts).is_committed():
            return None
        return pb.KeyError(txn_lock_not_found=pb.TxnLockNotFound(key=raw_key))
    if commit_ts < lock.min_commit_ts:
        return pb.KeyError(commit_ts_expired=pb.CommitTsExpired(
            start_ts=start_ts, attempted_commit_ts=commit_ts, key=raw_key, min_commit_ts=lock.min_commit_ts))
    write_type = lock.lock_type.write_type() or WriteType.LOCK  # a leftover pessimistic lock commits as Lock
    overlapped = commit_ts in lock.rollback_ts
    shape = (write_type, start_ts, lock.short_value, overlapped, lock.txn_source)
    batch.put_write_bytes(raw_key, commit_ts, batch.record(shape, lambda: Write(
        write_type, start_ts, lock.short_value, has_overlapped_rollback=overlapped, txn_source=lock.txn_source)))
    batch.unlock(raw_key)
    return None


# --- cleanup, rollback, resolve -------------------------------------------------------------

def cleanup(reader: TxnReader, req: pb.CleanupRequest) -> Outcome:
    """Roll back one key of a txn whose lock expired (current_ts 0: regardless of its TTL);
    answers the commit ts instead when the txn had committed."""
    batch = TxnBatch()
    result = _cleanup_key(reader, batch, req.key, req.start_version, req.current_ts, protect_rollback=True)
    if isinstance(result, pb.KeyError):
        return Outcome([], pb.CleanupResponse(error=result))
    if result:
        return Outcome([], pb.CleanupResponse(commit_version=result))
    return Outcome(batch.modifies, pb.CleanupResponse())


def batch_rollback(reader: TxnReader, req: pb.BatchRollbackRequest) -> Outcome:
    """Roll back the txn on every key; a key it already committed aborts the command."""
    batch = TxnBatch()
    for raw_key in req.keys:
        result = _cleanup_key(reader, batch, raw_key, req.start_version, 0, protect_rollback=False)
        if result:
            return Outcome([], pb.BatchRollbackResponse(error=abort_error(
                f"txn {req.start_version} already committed at {result} on key {raw_key.hex()}")))
    return Outcome(batch.modifies, pb.BatchRollbackResponse())


def resolve_lock(reader: TxnReader, req: pb.ResolveLockRequest, lower: bytes = b"",
                 upper: bytes | None = None) -> Outcome:
    """Commit or roll back the locks of the given txns in [lower, upper) (the region), or only
    req.keys (resolve lock lite)."""
    if req.keys:
        return _resolve_lock_lite(reader, req)
    statuses = {info.txn: info.status for info in req.txn_infos} or {req.start_version: req.commit_version}
    batch = TxnBatch()
    for raw_key, lock in reader.locks(lower, upper):
        commit_ts = statuses.get(lock.ts)
        if commit_ts is None:
            continue
        if commit_ts and commit_ts <= lock.ts:
            return Outcome([], pb.ResolveLockResponse(error=abort_error(
                f"invalid txn tso: start_ts {lock.ts} commit_ts {commit_ts}")))
        if commit_ts:
            error = _commit_key(reader, batch, raw_key, lock.ts, commit_ts)
            if error is not None:
                return Outcome([], pb.ResolveLockResponse(error=error))
        else:
            _rollback_lock(reader, batch, raw_key, lock, collapse=True)
    return Outcome(batch.modifies, pb.ResolveLockResponse())


def _resolve_lock_lite(reader: TxnReader, req: pb.ResolveLockRequest) -> Outcome:
    """commands/resolve_lock_lite.rs: each key committed as KvCommit does (no lock of the txn and
    not committed: TxnLockNotFound) or cleaned up as KvCleanup with current_ts 0 (a key without
    the lock gets a rollback record; one the txn committed fails the command)."""
    start_ts, commit_ts = req.start_version, req.commit_version
    if commit_ts and commit_ts <= start_ts:
        return Outcome([], pb.ResolveLockResponse(error=abort_error(
            f"invalid txn tso: start_ts {start_ts} commit_ts {commit_ts}")))
    batch = TxnBatch()
    for raw_key in dict.fromkeys(req.keys):
        if commit_ts:
            error = _commit_key(reader, batch, raw_key, start_ts, commit_ts)
        else:
            committed = _cleanup_key(reader, batch, raw_key, start_ts, 0, protect_rollback=False)
            error = abort_error(f"txn {start_ts} already committed at {committed} on key {raw_key.hex()}"
                                ) if committed else None
        if error is not None:
            return Outcome([], pb.ResolveLockResponse(error=error))
    return Outcome(batch.modifies, pb.ResolveLockResponse())


# --- transaction status ---------------------------------------------------------------------

def check_txn_status(reader: TxnReader, req: pb.CheckTxnStatusRequest) -> Outcome:
    """Decide a txn from its primary: committed, rolled back, rolled back now because its TTL
    expired (or its lock is missing), or alive (its TTL; min_commit_ts pushed past the caller)."""
    raw_key = req.primary_key
    lock = reader.load_lock(raw_key)
    if lock is not None and lock.ts == req.lock_ts:
        if req.verify_is_primary and lock.primary != raw_key:
            return Outcome([], pb.CheckTxnStatusResponse(error=pb.KeyError(
                primary_mismatch=pb.PrimaryMismatch(lock_info=lock_info(lock, raw_key)))))
        return _status_of_live_lock(reader, req, lock)
    return _status_without_lock(reader, req, lock)


def _status_of_live_lock(reader: TxnReader, req: pb.CheckTxnStatusRequest, lock: Lock) -> Outcome:
    batch, raw_key = TxnBatch(), req.primary_key
    if lock.use_async_commit and not req.force_sync_commit:
        return Outcome([], _uncommitted(lock, pushed=False))
    if lock_expired(lock, req.current_ts):
        if req.resolving_pessimistic_lock and lock.lock_type == LockType.PESSIMISTIC:
            batch.unlock(raw_key)
            return Outcome(batch.modifies, pb.CheckTxnStatusResponse(action=pb.TTLExpirePessimisticRollback))
        _rollback_lock(reader, batch, raw_key, lock, collapse=True)
        return Outcome(batch.modifies, pb.CheckTxnStatusResponse(action=pb.TTLExpireRollback))
    caller = req.caller_start_ts
    if lock.min_commit_ts and caller != TS_MAX and caller >= lock.min_commit_ts:
        lock = replace(lock, min_commit_ts=max(caller + 1, req.current_ts))
        batch.put_lock(raw_key, lock)
    pushed = (caller != 0 and lock.min_commit_ts > caller) or caller == TS_MAX
    return Outcome(batch.modifies, _uncommitted(lock, pushed))


def _uncommitted(lock: Lock, pushed: bool) -> pb.CheckTxnStatusResponse:
    return pb.CheckTxnStatusResponse(lock_ttl=lock.ttl, action=pb.MinCommitTSPushed if pushed else pb.NoAction,
                                     lock_info=lock_info(lock, lock.primary))


def _status_without_lock(reader: TxnReader, req: pb.CheckTxnStatusRequest, other_lock: Lock | None) -> Outcome:
    raw_key = req.primary_key
    record = reader.txn_commit_record(raw_key, req.lock_ts)
    if record.is_committed():
        return Outcome([], pb.CheckTxnStatusResponse(commit_version=record.commit_ts))
    if record.is_rolled_back():
        return Outcome([], pb.CheckTxnStatusResponse())
    if not req.rollback_if_not_exist:
        return Outcome([], pb.CheckTxnStatusResponse(error=pb.KeyError(
            txn_not_found=pb.TxnNotFound(start_ts=req.lock_ts, primary_key=raw_key))))
    if req.resolving_pessimistic_lock:
        return Outcome([], pb.CheckTxnStatusResponse(action=pb.LockNotExistDoNothing))
    batch = TxnBatch()
    _rollback_missing_lock(reader, batch, raw_key, req.lock_ts, other_lock, protected=True)
    return Outcome(batch.modifies, pb.CheckTxnStatusResponse(action=pb.LockNotExistRollback))


def txn_heart_beat(reader: TxnReader, req: pb.TxnHeartBeatRequest) -> Outcome:
    """Extend the primary lock's TTL to advise_lock_ttl (never shorten it)."""
    lock = reader.load_lock(req.primary_lock)
    if lock is None or lock.ts != req.start_version:
        return Outcome([], pb.TxnHeartBeatResponse(error=pb.KeyError(
            txn_not_found=pb.TxnNotFound(start_ts=req.start_version, primary_key=req.primary_lock))))
    batch = TxnBatch()
    if lock.ttl < req.advise_lock_ttl:
        lock = replace(lock, ttl=req.advise_lock_ttl)
        batch.put_lock(req.primary_lock, lock)
    return Outcome(batch.modifies, pb.TxnHeartBeatResponse(lock_ttl=lock.ttl))


def check_secondary_locks(reader: TxnReader, req: pb.CheckSecondaryLocksRequest) -> Outcome:
    """For async-commit resolution: the txn's locks if all are there; else its commit ts, or a
    protected rollback where the lock is missing (so the txn can no longer commit there)."""
    batch, locks = TxnBatch(), []
    for raw_key in req.keys:
        lock = reader.load_lock(raw_key)
        if lock is not None and lock.ts == req.start_version and lock.lock_type != LockType.PESSIMISTIC:
            locks.append(lock_info(lock, raw_key))
            continue
        if lock is not None and lock.ts == req.start_version:  # a pessimistic lock: roll it back
            batch.unlock(raw_key)
            lock = None
        record = _rollback_missing_lock(reader, batch, raw_key, req.start_version, lock, protected=True)
        commit_ts = record.commit_ts if record.is_committed() else 0
        return Outcome(batch.modifies, pb.CheckSecondaryLocksResponse(commit_ts=commit_ts))
    return Outcome(batch.modifies, pb.CheckSecondaryLocksResponse(locks=locks))


# --- pessimistic locks (basic: no waiting, no deadlock detection) ----------------------------

def pessimistic_lock(reader: TxnReader, req: pb.PessimisticLockRequest) -> Outcome:
    """Lock keys for update at for_update_ts; a newer commit is a PessimisticRetry conflict.
    A lock of another txn is reported at once (TiKV would wait up to wait_timeout)."""
    batch, values, not_founds = TxnBatch(), [], []
    for mutation in req.mutations:
        error = _pessimistic_lock_key(reader, batch, req, mutation)
        if error is not None:
            return Outcome([], pb.PessimisticLockResponse(errors=[error]))
        found = reader.visible_write(mutation.key, req.for_update_ts)
        values.append(reader.value_of(mutation.key, found[1]) if found else b"")
        not_founds.append(found is None)
    response = pb.PessimisticLockResponse()
    if req.wake_up_mode == pb.WakeUpModeForceLock:
        response.results.extend(pb.PessimisticLockKeyResult(value=v, existence=not nf)
                                for v, nf in zip(values, not_founds))
    else:
        if req.return_values:
            response.values.extend(values)
        if req.return_values or req.check_existence:
            response.not_founds.extend(not_founds)
    return Outcome(batch.modifies, response)


def _pessimistic_lock_key(reader: TxnReader, batch: TxnBatch, req: pb.PessimisticLockRequest,
                          mutation: pb.Mutation) -> pb.KeyError | None:
    raw_key, start_ts = mutation.key, req.start_version
    lock = reader.load_lock(raw_key)
    if lock is not None:
        if lock.ts != start_ts:
            return locked_error(lock, raw_key)
        if lock.lock_type == LockType.PESSIMISTIC and lock.for_update_ts < req.for_update_ts:
            batch.put_lock(raw_key, replace(lock, for_update_ts=req.for_update_ts, ttl=max(lock.ttl, req.lock_ttl)))
        return None
    found = reader.seek_write(raw_key)
    if found is not None and found[0] > req.for_update_ts:
        return _conflict(start_ts, raw_key, req.primary_lock, found[0], found[1], _Reason.PessimisticRetry)
    if reader.txn_commit_record(raw_key, start_ts).is_rolled_back():
        return abort_error(f"PessimisticLockRolledBack: start_ts {start_ts} key {raw_key.hex()}")
    exists = reader.visible_write(raw_key, req.for_update_ts) is not None
    if mutation.assertion == pb.Assertion.Value("NotExist") and exists:
        return pb.KeyError(already_exist=pb.AlreadyExist(key=raw_key))
    if req.lock_only_if_exists and not exists:
        return None
    batch.put_lock(raw_key, Lock(LockType.PESSIMISTIC, req.primary_lock, start_ts, req.lock_ttl,
                                 for_update_ts=req.for_update_ts, min_commit_ts=req.min_commit_ts))
    return None


def pessimistic_rollback(reader: TxnReader, req: pb.PessimisticRollbackRequest) -> Outcome:
    """Release this txn's pessimistic locks taken at or before for_update_ts; others stay."""
    batch = TxnBatch()
    for raw_key in req.keys:
        lock = reader.load_lock(raw_key)
        if (lock is not None and lock.ts == req.start_version and lock.lock_type == LockType.PESSIMISTIC
                and lock.for_update_ts <= req.for_update_ts):
            batch.unlock(raw_key)
    return Outcome(batch.modifies, pb.PessimisticRollbackResponse())


# --- GC and range deletion ------------------------------------------------------------------

def gc(reader: TxnReader, safe_point: int, lower: bytes = b"", upper: bytes | None = None) -> list[Modify]:
    """Drop what no read at ts >= safe_point can see, for the keys in [lower, upper): below the
    safe point keep only the newest Put (a newest Delete goes too), with their default values."""
    batch = TxnBatch()
    for raw_key in reader.user_keys(lower, upper, cfs=(CF_WRITE,)):
        _gc_key(reader, batch, raw_key, safe_point)
    return batch.modifies


def _gc_key(reader: TxnReader, batch: TxnBatch, raw_key: bytes, safe_point: int) -> None:
    for commit_ts, write in gc_versions(reader.writes(raw_key, safe_point)):
        batch.delete_write(raw_key, commit_ts)
        if write.write_type == WriteType.PUT and write.short_value is None:
            batch.delete_value(raw_key, write.start_ts)


def gc_versions(below: Iterable[tuple[int, Write]]) -> Iterator[tuple[int, Write]]:
    """The records GC drops among a key's records at or below the safe point (newest first):
    every one but the newest Put; none is kept when a Delete comes first (shared by gc and the
    store's GC loop, which reads the write CF in one pass)."""
    keep_found = False
    for commit_ts, write in below:
        if not keep_found and write.write_type == WriteType.PUT:
            keep_found = True
            continue
        keep_found = keep_found or write.write_type == WriteType.DELETE
        yield commit_ts, write


def delete_range(req: pb.DeleteRangeRequest) -> list[DeleteRange]:
    """Every version, lock and long value of the raw keys in [start_key, end_key) (notify_only: nothing)."""
    if req.notify_only:
        return []
    start = encode_bytes(req.start_key)
    end = encode_bytes(req.end_key) if req.end_key else None
    return [DeleteRange(cf, start, end) for cf in (CF_DEFAULT, CF_LOCK, CF_WRITE)]
