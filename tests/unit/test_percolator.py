"""Percolator as TiKV serves it (br_devcluster.store.percolator / txn_reads) over in-memory CFs:
the engine bytes each command leaves, its errors, and an independent model check."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.lock_resolver import async_commit_ts
from br_common.tso import compose
from br_common.txn_codec import TS_MAX, Lock, LockType, Write, WriteType, append_ts, encode_bytes
from br_devcluster.store import percolator, txn_reads
from br_devcluster.store.concurrency import ConcurrencyManager
from br_devcluster.store.txn_reader import Modify, TxnReader
from tests.doubles import EngineCFs, MemoryCFs

LONG = b"L" * 300


class _Backend:
    """Which CFs the running test gets (in-memory dicts, or RocksDB through cf_engine)."""
    kind = "memory"
    root: Path | None = None
    made: list[EngineCFs] = []


@pytest.fixture(autouse=True, params=["memory", "rocksdb"])
def _cfs_kind(request: pytest.FixtureRequest, tmp_path: Path):
    """Every test runs over MemoryCFs and over the real engine adapter (cf_engine)."""
    _Backend.kind, _Backend.root, _Backend.made = request.param, tmp_path, []
    yield
    for cfs in _Backend.made:
        cfs.close()


def new_cfs() -> MemoryCFs | EngineCFs:
    if _Backend.kind == "memory":
        return MemoryCFs()
    cfs = EngineCFs(_Backend.root / f"db{len(_Backend.made)}")
    _Backend.made.append(cfs)
    return cfs


def ts(ms: int, logical: int = 0) -> int:
    return compose(ms, logical)


def run(cfs: MemoryCFs, command, req, *args):
    outcome = command(TxnReader(cfs), req, *args)
    cfs.apply(outcome.modifies)
    return outcome.response


def put(key: bytes, value: bytes) -> pb.Mutation:
    return pb.Mutation(op=pb.Put, key=key, value=value)


def mutation(op: int, key: bytes) -> pb.Mutation:
    return pb.Mutation(op=op, key=key)


def prewrite(cfs: MemoryCFs, start: int, *mutations: pb.Mutation, primary: bytes | None = None,
             ttl: int = 3000, **fields) -> pb.PrewriteResponse:
    req = pb.PrewriteRequest(mutations=list(mutations), primary_lock=primary or mutations[0].key,
                             start_version=start, lock_ttl=ttl, **fields)
    return run(cfs, percolator.prewrite, req)


def commit(cfs: MemoryCFs, start: int, commit_ts: int, *keys: bytes) -> pb.CommitResponse:
    return run(cfs, percolator.commit, pb.CommitRequest(start_version=start, commit_version=commit_ts, keys=keys))


def write_txn(cfs: MemoryCFs, start: int, commit_ts: int, *mutations: pb.Mutation) -> None:
    assert not prewrite(cfs, start, *mutations).errors
    assert not commit(cfs, start, commit_ts, *(m.key for m in mutations)).HasField("error")


def get(cfs: MemoryCFs, key: bytes, version: int, **context) -> pb.GetResponse:
    req = pb.GetRequest(key=key, version=version, need_commit_ts=True, context=pb.Context(**context))
    return txn_reads.kv_get(TxnReader(cfs), req)


def value_at(cfs: MemoryCFs, key: bytes, version: int) -> bytes | None:
    response = get(cfs, key, version)
    assert not response.HasField("error"), response
    return None if response.not_found else response.value


def write_record(cfs: MemoryCFs, key: bytes, commit_ts: int) -> Write | None:
    data = cfs.data["write"].get(append_ts(encode_bytes(key), commit_ts))
    return None if data is None else Write.parse(data)


def lock_record(cfs: MemoryCFs, key: bytes) -> Lock | None:
    data = cfs.data["lock"].get(encode_bytes(key))
    return None if data is None else Lock.parse(data)


# --- layout ---------------------------------------------------------------------------------

def test_prewrite_and_commit_leave_tikvs_bytes() -> None:
    cfs = new_cfs()
    response = prewrite(cfs, 10, put(b"k1", b"v1"), put(b"k2", LONG), mutation(pb.Del, b"k3"), ttl=3000,
                        txn_size=3)
    assert not response.errors and response.min_commit_ts == 0 and response.one_pc_commit_ts == 0
    assert cfs.data["lock"] == {
        encode_bytes(b"k1"): Lock(LockType.PUT, b"k1", 10, 3000, b"v1", txn_size=3).to_bytes(),
        encode_bytes(b"k2"): Lock(LockType.PUT, b"k1", 10, 3000, txn_size=3).to_bytes(),
        encode_bytes(b"k3"): Lock(LockType.DELETE, b"k1", 10, 3000, txn_size=3).to_bytes(),
    }
    assert cfs.data["default"] == {append_ts(encode_bytes(b"k2"), 10): LONG}
    assert commit(cfs, 10, 20, b"k1", b"k2", b"k3").commit_version == 20
    assert cfs.data["lock"] == {}
    assert cfs.data["write"] == {
        append_ts(encode_bytes(b"k1"), 20): Write(WriteType.PUT, 10, b"v1").to_bytes(),
        append_ts(encode_bytes(b"k2"), 20): Write(WriteType.PUT, 10).to_bytes(),
        append_ts(encode_bytes(b"k3"), 20): Write(WriteType.DELETE, 10).to_bytes(),
    }
    assert value_at(cfs, b"k1", 20) == b"v1" and value_at(cfs, b"k2", 25) == LONG
    assert value_at(cfs, b"k1", 19) is None and value_at(cfs, b"k3", 30) is None
    assert get(cfs, b"k2", 30).commit_ts == 20


def async_prewrite(cfs: MemoryCFs, start: int, primary: bytes, secondaries: list[bytes], max_ts: int,
                   *keys: bytes, **fields) -> pb.PrewriteResponse:
    """One region's share of an async-commit txn, with the store's max ts."""
    req = pb.PrewriteRequest(mutations=[put(k, b"v-" + k) for k in keys], primary_lock=primary,
                             start_version=start, lock_ttl=3000, use_async_commit=True,
                             secondaries=secondaries, **fields)
    return run(cfs, percolator.prewrite, req, max_ts)


def test_async_commit_prewrite_takes_min_commit_ts_above_the_max_ts() -> None:
    """max(start_ts, max_ts, for_update_ts) + 1, or the request's if higher; the primary's lock
    lists the secondaries, every lock says async commit; the answer is the largest."""
    cfs = new_cfs()
    response = async_prewrite(cfs, 10, b"p", [b"s1", b"s2"], 30, b"p", b"s1", try_one_pc=True)
    assert not response.errors and response.min_commit_ts == 31 and response.one_pc_commit_ts == 0
    primary, secondary = lock_record(cfs, b"p"), lock_record(cfs, b"s1")
    assert primary.use_async_commit and primary.secondaries == (b"s1", b"s2") and primary.min_commit_ts == 31
    assert secondary.use_async_commit and secondary.secondaries == () and secondary.min_commit_ts == 31
    assert async_prewrite(cfs, 10, b"p", [b"s1", b"s2"], 5, b"s2").min_commit_ts == 11  # start_ts + 1
    assert async_prewrite(cfs, 10, b"p", [], 5, b"s3", min_commit_ts=50).min_commit_ts == 50
    # a retry answers the lock's own min_commit_ts, whatever the max ts is now
    assert async_prewrite(cfs, 10, b"p", [b"s1", b"s2"], 90, b"p", b"s1").min_commit_ts == 31
    assert cfs.data["write"] == {}


def test_async_commit_above_max_commit_ts_falls_back_to_2pc() -> None:
    cfs = new_cfs()
    response = async_prewrite(cfs, 10, b"p", [b"s"], 40, b"p", max_commit_ts=35)
    assert not response.errors and response.min_commit_ts == 0
    lock = lock_record(cfs, b"p")
    assert not lock.use_async_commit and not lock.secondaries and lock.min_commit_ts == 0


def test_one_pc_alone_is_refused_with_ordinary_locks() -> None:
    cfs = new_cfs()
    response = prewrite(cfs, 10, put(b"k", b"v"), try_one_pc=True)
    assert not response.errors and response.min_commit_ts == 0 and response.one_pc_commit_ts == 0
    lock = lock_record(cfs, b"k")
    assert lock is not None and not lock.use_async_commit and not lock.secondaries
    assert cfs.data["write"] == {}


def test_async_commit_locks_block_reads_from_min_commit_ts_and_commit_at_it() -> None:
    cfs = new_cfs()
    async_prewrite(cfs, 10, b"p", [b"s"], 30, b"p", b"s")
    assert get(cfs, b"s", 30).not_found  # it will commit after 30: the read at 30 is not blocked
    assert get(cfs, b"s", 31).error.locked.use_async_commit
    assert get(cfs, b"p", TS_MAX).error.locked.min_commit_ts == 31  # an async primary blocks the max ts too
    too_early = commit(cfs, 10, 25, b"p", b"s")
    assert too_early.error.commit_ts_expired.min_commit_ts == 31
    assert not commit(cfs, 10, 31, b"p", b"s").HasField("error")
    assert value_at(cfs, b"s", 31) == b"v-s" and value_at(cfs, b"p", 30) is None


def test_check_txn_status_reports_an_expired_async_commit_primary_untouched() -> None:
    """TiKV neither rolls it back by TTL nor pushes it: the caller checks the secondaries."""
    cfs = new_cfs()
    async_prewrite(cfs, ts(100), b"p", [b"s"], 0, b"p")
    status = check_status(cfs, b"p", ts(100), ts(100_000), caller_start_ts=ts(100_000))
    assert status.action == pb.NoAction and status.lock_ttl == 3000 and status.commit_version == 0
    assert status.lock_info.use_async_commit and list(status.lock_info.secondaries) == [b"s"]
    assert status.lock_info.min_commit_ts == ts(100) + 1 and lock_record(cfs, b"p") is not None
    forced = check_status(cfs, b"p", ts(100), ts(100_000), force_sync_commit=True)
    assert forced.action == pb.TTLExpireRollback and lock_record(cfs, b"p") is None


def test_check_secondary_locks_of_an_async_commit_txn() -> None:
    """All locked: the locks (with min_commit_ts); one never prewritten: a protected rollback
    there, so that its late prewrite fails; one committed: its commit ts."""
    cfs = new_cfs()
    async_prewrite(cfs, 10, b"p", [b"a", b"b", b"c"], 20, b"p", b"a", b"b")
    check = pb.CheckSecondaryLocksRequest(keys=[b"a", b"b"], start_version=10)
    locks = run(cfs, percolator.check_secondary_locks, check).locks
    assert [(lock.key, lock.min_commit_ts, lock.use_async_commit) for lock in locks] == [
        (b"a", 21, True), (b"b", 21, True)]
    missing = run(cfs, percolator.check_secondary_locks, pb.CheckSecondaryLocksRequest(keys=[b"c"], start_version=10))
    assert not missing.locks and missing.commit_ts == 0
    assert write_record(cfs, b"c", 10) == Write.rollback(10, protected=True)
    late = async_prewrite(cfs, 10, b"p", [], 20, b"c")
    assert late.errors[0].conflict.reason == pb.WriteConflict.SelfRolledBack
    assert not commit(cfs, 10, 21, b"a").HasField("error")
    committed = run(cfs, percolator.check_secondary_locks, check)
    assert not committed.locks and committed.commit_ts == 21


# --- reads and locks ------------------------------------------------------------------------

def test_reads_report_locks_that_may_commit_before_them() -> None:
    cfs = new_cfs()
    write_txn(cfs, 5, 6, put(b"p", b"old"), put(b"s", b"old"))
    prewrite(cfs, 10, put(b"p", b"new"), put(b"s", b"new"), ttl=100)
    assert value_at(cfs, b"p", 9) == b"old"  # the lock is newer than the read
    locked = get(cfs, b"s", 10).error.locked
    assert (locked.primary_lock, locked.lock_version, locked.key, locked.lock_ttl, locked.lock_type) == (
        b"p", 10, b"s", 100, pb.Put)
    assert get(cfs, b"s", 11, resolved_locks=[10]).value == b"old"  # the reader knows txn 10 aborted
    assert get(cfs, b"s", 11, isolation_level=pb.RC).value == b"old"
    assert get(cfs, b"s", 11, committed_locks=[10]).value == b"new"  # the reader knows txn 10 committed
    assert get(cfs, b"p", TS_MAX).value == b"old"  # latest read ignores a 2PC primary lock
    assert get(cfs, b"s", TS_MAX).HasField("error")  # ... but not a secondary


def test_lock_records_and_min_commit_ts_do_not_block_reads() -> None:
    cfs = new_cfs()
    write_txn(cfs, 5, 6, put(b"k", b"v"), put(b"m", b"w"))
    prewrite(cfs, 10, mutation(pb.Lock, b"k"))
    prewrite(cfs, 11, put(b"m", b"x"), min_commit_ts=50)
    assert value_at(cfs, b"k", 20) == b"v"
    assert value_at(cfs, b"m", 49) == b"w"
    assert get(cfs, b"m", 50).HasField("error")
    commit(cfs, 10, 12, b"k")
    assert write_record(cfs, b"k", 12) == Write(WriteType.LOCK, 10)
    assert value_at(cfs, b"k", 20) == b"v"  # a Lock record is skipped


def test_batch_get_and_scans() -> None:
    cfs = new_cfs()
    write_txn(cfs, 5, 6, *(put(k, k.upper()) for k in (b"a", b"b", b"c", b"d", b"e")))
    write_txn(cfs, 7, 8, mutation(pb.Del, b"b"), put(b"c", LONG))
    prewrite(cfs, 9, put(b"d", b"locked"))
    reader = TxnReader(cfs)
    batch = txn_reads.kv_batch_get(reader, pb.BatchGetRequest(keys=[b"a", b"b", b"d", b"z"], version=10))
    assert [(p.key, p.value, p.error.locked.key) for p in batch.pairs] == [(b"a", b"A", b""), (b"", b"", b"d")]

    def scan(version: int = 10, limit: int = 100, **fields):
        response = txn_reads.kv_scan(reader, pb.ScanRequest(version=version, limit=limit, **fields))
        return [(p.key, p.value) if not p.HasField("error") else (p.error.locked.key, "locked")
                for p in response.pairs]

    assert scan(start_key=b"a") == [(b"a", b"A"), (b"c", LONG), (b"d", "locked"), (b"e", b"E")]
    assert scan(start_key=b"b", end_key=b"e", limit=1) == [(b"c", LONG)]
    assert scan(start_key=b"a", version=7)[:2] == [(b"a", b"A"), (b"b", b"B")]
    assert scan(start_key=b"e", end_key=b"a", reverse=True) == [(b"d", "locked"), (b"c", LONG), (b"a", b"A")]
    assert scan(reverse=True, limit=2) == [(b"e", b"E"), (b"d", "locked")]
    assert scan(start_key=b"a", key_only=True)[0] == (b"a", b"")
    assert scan(start_key=b"a", limit=0) == []  # as TiKV: limit 0 returns nothing
    clamped = txn_reads.kv_scan(reader, pb.ScanRequest(version=10, end_key=b"z", limit=9), b"b", b"d")
    assert [p.key for p in clamped.pairs] == [b"c"]
    back = txn_reads.kv_scan(reader, pb.ScanRequest(version=10, reverse=True, limit=9), b"b", b"d")
    assert [p.key for p in back.pairs] == [b"c"]


def test_scan_lock() -> None:
    cfs = new_cfs()
    prewrite(cfs, 10, put(b"a", b"1"), put(b"b", b"2"))
    prewrite(cfs, 20, put(b"c", b"3"))
    reader = TxnReader(cfs)
    found = txn_reads.kv_scan_lock(reader, pb.ScanLockRequest(max_version=15))
    assert [(lock.key, lock.lock_version, lock.primary_lock) for lock in found.locks] == [
        (b"a", 10, b"a"), (b"b", 10, b"a")]
    assert len(txn_reads.kv_scan_lock(reader, pb.ScanLockRequest(max_version=30, limit=2)).locks) == 2
    in_region = txn_reads.kv_scan_lock(reader, pb.ScanLockRequest(max_version=30), b"b", b"c")
    assert [lock.key for lock in in_region.locks] == [b"b"]


# --- prewrite errors ------------------------------------------------------------------------

def test_prewrite_reports_every_lock_and_writes_nothing() -> None:
    cfs = new_cfs()
    prewrite(cfs, 10, put(b"a", b"1"), put(b"b", b"2"))
    before = {cf: dict(v) for cf, v in cfs.data.items()}
    response = prewrite(cfs, 20, put(b"a", b"x"), put(b"b", b"y"), put(b"c", b"z"))
    assert [e.locked.key for e in response.errors] == [b"a", b"b"]
    assert cfs.data == before


def test_prewrite_write_conflict_and_retry() -> None:
    cfs = new_cfs()
    write_txn(cfs, 15, 20, put(b"k", b"v"))
    response = prewrite(cfs, 10, put(b"other", b"1"), put(b"k", b"late"))
    conflict = response.errors[0].conflict
    assert (conflict.start_ts, conflict.conflict_ts, conflict.conflict_commit_ts, conflict.key, conflict.primary,
            conflict.reason) == (10, 15, 20, b"k", b"other", pb.WriteConflict.Optimistic)
    assert lock_record(cfs, b"other") is None
    assert not prewrite(cfs, 30, put(b"k", b"new")).errors
    state = {cf: dict(v) for cf, v in cfs.data.items()}
    assert not prewrite(cfs, 30, put(b"k", b"new")).errors  # an idempotent retry
    assert cfs.data == state


def test_prewrite_after_rollback_is_self_rolled_back() -> None:
    cfs = new_cfs()
    run(cfs, percolator.batch_rollback, pb.BatchRollbackRequest(start_version=10, keys=[b"k"]))
    assert write_record(cfs, b"k", 10) == Write.rollback(10, protected=False)
    conflict = prewrite(cfs, 10, put(b"k", b"v")).errors[0].conflict
    assert conflict.reason == pb.WriteConflict.SelfRolledBack
    assert lock_record(cfs, b"k") is None


def test_insert_and_check_not_exists() -> None:
    cfs = new_cfs()
    write_txn(cfs, 5, 6, put(b"k", b"v"))
    for op in (pb.Insert, pb.CheckNotExists):
        error = prewrite(cfs, 10, pb.Mutation(op=op, key=b"k", value=b"x")).errors[0]
        assert error.already_exist.key == b"k"
    assert not prewrite(cfs, 10, mutation(pb.CheckNotExists, b"new")).errors
    assert lock_record(cfs, b"new") is None  # CheckNotExists writes no lock
    write_txn(cfs, 11, 12, mutation(pb.Del, b"k"))
    write_txn(cfs, 13, 14, pb.Mutation(op=pb.Insert, key=b"k", value=b"again"))
    assert value_at(cfs, b"k", 15) == b"again"


def test_prewrite_refuses_non_prewrite_ops() -> None:
    response = prewrite(new_cfs(), 10, mutation(pb.Rollback, b"k"))
    assert response.errors[0].abort


# --- commit ---------------------------------------------------------------------------------

def test_commit_errors_and_retries() -> None:
    cfs = new_cfs()
    assert commit(cfs, 10, 20, b"k").error.txn_lock_not_found.key == b"k"
    prewrite(cfs, 10, put(b"k", b"v"), min_commit_ts=30)
    expired = commit(cfs, 10, 20, b"k").error.commit_ts_expired
    assert (expired.start_ts, expired.attempted_commit_ts, expired.min_commit_ts) == (10, 20, 30)
    assert commit(cfs, 10, 10, b"k").error.abort
    assert not commit(cfs, 10, 30, b"k").HasField("error")
    assert not commit(cfs, 10, 30, b"k").HasField("error")  # a retried commit
    run(cfs, percolator.batch_rollback, pb.BatchRollbackRequest(start_version=40, keys=[b"k"]))
    prewrite(cfs, 40, put(b"k", b"v"))  # SelfRolledBack: nothing to commit
    assert commit(cfs, 40, 50, b"k").error.HasField("txn_lock_not_found")


def test_commit_of_leftover_pessimistic_lock_writes_lock_record() -> None:
    cfs = new_cfs()
    run(cfs, percolator.pessimistic_lock, pb.PessimisticLockRequest(
        mutations=[mutation(pb.PessimisticLock, b"k")], primary_lock=b"k", start_version=10, for_update_ts=10,
        lock_ttl=3000))
    commit(cfs, 10, 20, b"k")
    assert write_record(cfs, b"k", 20) == Write(WriteType.LOCK, 10)


# --- cleanup, rollback, resolve -------------------------------------------------------------

def test_cleanup() -> None:
    cfs = new_cfs()
    prewrite(cfs, ts(1000), put(b"k", LONG), ttl=100)
    response = run(cfs, percolator.cleanup, pb.CleanupRequest(key=b"k", start_version=ts(1000), current_ts=ts(1050)))
    assert response.error.locked.key == b"k"  # still alive
    response = run(cfs, percolator.cleanup, pb.CleanupRequest(key=b"k", start_version=ts(1000), current_ts=ts(1101)))
    assert not response.HasField("error") and response.commit_version == 0
    assert cfs.data["lock"] == {} and cfs.data["default"] == {}
    assert write_record(cfs, b"k", ts(1000)) == Write.rollback(ts(1000), protected=False)
    write_txn(cfs, ts(2000), ts(2001), put(b"k", b"v"))
    committed = run(cfs, percolator.cleanup, pb.CleanupRequest(key=b"k", start_version=ts(2000)))
    assert committed.commit_version == ts(2001)
    run(cfs, percolator.cleanup, pb.CleanupRequest(key=b"never", start_version=ts(3000)))
    assert write_record(cfs, b"never", ts(3000)) == Write.rollback(ts(3000), protected=True)


def test_batch_rollback() -> None:
    cfs = new_cfs()
    write_txn(cfs, 5, 6, put(b"done", b"v"))
    prewrite(cfs, 10, put(b"k", b"v"))
    rolled = run(cfs, percolator.batch_rollback, pb.BatchRollbackRequest(start_version=10, keys=[b"k"]))
    assert not rolled.HasField("error")
    assert lock_record(cfs, b"k") is None and write_record(cfs, b"k", 10) == Write.rollback(10, protected=False)
    run(cfs, percolator.batch_rollback, pb.BatchRollbackRequest(start_version=12, keys=[b"k"]))
    assert write_record(cfs, b"k", 10) is None  # collapsed by the newer unprotected rollback
    assert write_record(cfs, b"k", 12) == Write.rollback(12, protected=False)
    response = run(cfs, percolator.batch_rollback, pb.BatchRollbackRequest(start_version=5, keys=[b"done"]))
    assert response.error.abort


def test_rollback_of_pessimistic_primary_is_protected() -> None:
    cfs = new_cfs()
    prewrite(cfs, 10, put(b"p", b"v"), put(b"s", b"v"), for_update_ts=11)
    run(cfs, percolator.batch_rollback, pb.BatchRollbackRequest(start_version=10, keys=[b"p", b"s"]))
    assert write_record(cfs, b"p", 10).is_protected() and not write_record(cfs, b"s", 10).is_protected()


def test_resolve_lock() -> None:
    cfs = new_cfs()
    prewrite(cfs, 10, put(b"a", b"1"), put(b"b", LONG), put(b"c", b"3"))
    prewrite(cfs, 11, put(b"d", b"4"))
    run(cfs, percolator.resolve_lock, pb.ResolveLockRequest(start_version=10, commit_version=20), b"a", b"c")
    assert value_at(cfs, b"a", 30) == b"1" and value_at(cfs, b"b", 30) == LONG
    assert lock_record(cfs, b"c") is not None and lock_record(cfs, b"d") is not None  # outside / other txn
    run(cfs, percolator.resolve_lock, pb.ResolveLockRequest(txn_infos=[pb.TxnInfo(txn=10, status=20),
                                                                      pb.TxnInfo(txn=11, status=0)]))
    assert cfs.data["lock"] == {} and value_at(cfs, b"c", 30) == b"3" and value_at(cfs, b"d", 30) is None
    prewrite(cfs, 40, put(b"x", b"1"), put(b"y", b"2"))
    run(cfs, percolator.resolve_lock, pb.ResolveLockRequest(start_version=40, keys=[b"y", b"z"]))
    assert lock_record(cfs, b"x") is not None and lock_record(cfs, b"y") is None
    assert write_record(cfs, b"z", 40) == Write.rollback(40, protected=False)  # lite: cleanup of every key
    bad = run(cfs, percolator.resolve_lock, pb.ResolveLockRequest(start_version=40, commit_version=40))
    assert bad.error.abort
    missing = run(cfs, percolator.resolve_lock, pb.ResolveLockRequest(start_version=40, commit_version=50,
                                                                       keys=[b"x", b"y"]))
    assert missing.error.HasField("txn_lock_not_found") and lock_record(cfs, b"x") is not None
    assert not run(cfs, percolator.resolve_lock, pb.ResolveLockRequest(start_version=40, commit_version=50,
                                                                       keys=[b"x"])).HasField("error")
    committed = run(cfs, percolator.resolve_lock, pb.ResolveLockRequest(start_version=40, keys=[b"x"]))
    assert "already committed" in committed.error.abort


# --- transaction status ---------------------------------------------------------------------

def check_status(cfs: MemoryCFs, primary: bytes, lock_ts: int, current_ts: int, **fields) -> pb.CheckTxnStatusResponse:
    return run(cfs, percolator.check_txn_status, pb.CheckTxnStatusRequest(
        primary_key=primary, lock_ts=lock_ts, current_ts=current_ts, **fields))


def test_check_txn_status_of_a_live_then_expired_lock() -> None:
    cfs = new_cfs()
    start = ts(1000)
    prewrite(cfs, start, put(b"p", b"v"), put(b"s", b"v"), ttl=100)
    alive = check_status(cfs, b"p", start, ts(1100), caller_start_ts=ts(1100))
    assert (alive.lock_ttl, alive.action, alive.lock_info.key) == (100, pb.NoAction, b"p")
    expired = check_status(cfs, b"p", start, ts(1101))
    assert (expired.lock_ttl, expired.commit_version, expired.action) == (0, 0, pb.TTLExpireRollback)
    assert lock_record(cfs, b"p") is None and write_record(cfs, b"p", start).write_type == WriteType.ROLLBACK
    again = check_status(cfs, b"p", start, ts(1200))
    assert (again.lock_ttl, again.commit_version, again.action) == (0, 0, pb.NoAction)


def test_check_txn_status_pushes_min_commit_ts() -> None:
    cfs = new_cfs()
    prewrite(cfs, ts(1000), put(b"p", b"v"), ttl=1000, min_commit_ts=ts(1000) + 1)
    pushed = check_status(cfs, b"p", ts(1000), ts(1001), caller_start_ts=ts(1500))
    assert pushed.action == pb.MinCommitTSPushed
    assert lock_record(cfs, b"p").min_commit_ts == ts(1500) + 1
    assert get(cfs, b"p", ts(1500)).value == b"" and get(cfs, b"p", ts(1500)).not_found


def test_check_txn_status_of_decided_or_missing_txns() -> None:
    cfs = new_cfs()
    write_txn(cfs, 10, 20, put(b"p", b"v"))
    assert check_status(cfs, b"p", 10, 30).commit_version == 20
    assert check_status(cfs, b"q", 10, 30).error.txn_not_found.primary_key == b"q"
    rolled = check_status(cfs, b"q", 10, 30, rollback_if_not_exist=True)
    assert rolled.action == pb.LockNotExistRollback
    assert write_record(cfs, b"q", 10) == Write.rollback(10, protected=True)
    prewrite(cfs, 40, put(b"q", b"v"), put(b"p", b"v"), primary=b"q")
    mismatch = check_status(cfs, b"p", 40, 50, verify_is_primary=True).error.primary_mismatch
    assert mismatch.lock_info.primary_lock == b"q"


def test_protected_rollback_on_anothers_commit_sets_overlapped_flag() -> None:
    cfs = new_cfs()
    write_txn(cfs, 10, 20, put(b"k", b"v"))
    rolled = check_status(cfs, b"k", 20, 30, rollback_if_not_exist=True)  # txn 20 never reached k
    assert rolled.action == pb.LockNotExistRollback
    assert write_record(cfs, b"k", 20) == Write(WriteType.PUT, 10, b"v", has_overlapped_rollback=True, gc_fence=0)
    assert value_at(cfs, b"k", 25) == b"v"
    assert prewrite(cfs, 20, put(b"k", b"x")).errors[0].conflict.reason == pb.WriteConflict.SelfRolledBack


def test_protected_rollback_marks_an_async_commit_lock_that_may_commit_at_its_ts() -> None:
    cfs = new_cfs()
    prewrite(cfs, 10, put(b"two_pc", b"v"))
    check_status(cfs, b"two_pc", 20, 30, rollback_if_not_exist=True)
    assert lock_record(cfs, b"two_pc").rollback_ts == ()  # TSO commit ts never equals 20
    async_lock = Lock(LockType.PUT, b"k", 10, 3000, b"v", min_commit_ts=15, use_async_commit=True)
    cfs.apply([Modify("lock", encode_bytes(b"k"), async_lock.to_bytes())])  # as another TiKV would have left it
    check_status(cfs, b"k", 20, 30, rollback_if_not_exist=True)
    assert lock_record(cfs, b"k").rollback_ts == (20,)
    commit(cfs, 10, 20, b"k")
    assert write_record(cfs, b"k", 20).has_overlapped_rollback
    assert check_status(cfs, b"k", 20, 40).commit_version == 0  # still known as rolled back


def test_txn_heart_beat() -> None:
    cfs = new_cfs()
    prewrite(cfs, 10, put(b"p", b"v"), ttl=100)
    beat = run(cfs, percolator.txn_heart_beat,
               pb.TxnHeartBeatRequest(primary_lock=b"p", start_version=10, advise_lock_ttl=500))
    assert beat.lock_ttl == 500 and lock_record(cfs, b"p").ttl == 500
    shorter = run(cfs, percolator.txn_heart_beat,
                  pb.TxnHeartBeatRequest(primary_lock=b"p", start_version=10, advise_lock_ttl=50))
    assert shorter.lock_ttl == 500
    missing = run(cfs, percolator.txn_heart_beat, pb.TxnHeartBeatRequest(primary_lock=b"p", start_version=11))
    assert missing.error.txn_not_found.start_ts == 11


def test_check_secondary_locks() -> None:
    cfs = new_cfs()
    prewrite(cfs, 10, put(b"a", b"1"), put(b"b", b"2"))
    check = pb.CheckSecondaryLocksRequest(keys=[b"a", b"b"], start_version=10)
    assert [lock.key for lock in run(cfs, percolator.check_secondary_locks, check).locks] == [b"a", b"b"]
    check_more = pb.CheckSecondaryLocksRequest(keys=[b"a", b"c"], start_version=10)
    response = run(cfs, percolator.check_secondary_locks, check_more)
    assert not response.locks and response.commit_ts == 0
    assert write_record(cfs, b"c", 10) == Write.rollback(10, protected=True)
    commit(cfs, 10, 20, b"a")
    assert run(cfs, percolator.check_secondary_locks, check_more).commit_ts == 20


# --- pessimistic ----------------------------------------------------------------------------

def pessimistic_lock(cfs: MemoryCFs, start: int, for_update: int, *keys: bytes, **fields) -> pb.PessimisticLockResponse:
    return run(cfs, percolator.pessimistic_lock, pb.PessimisticLockRequest(
        mutations=[mutation(pb.PessimisticLock, k) for k in keys], primary_lock=keys[0], start_version=start,
        for_update_ts=for_update, lock_ttl=3000, **fields))


def test_pessimistic_transaction() -> None:
    cfs = new_cfs()
    write_txn(cfs, 5, 6, put(b"a", b"old"))
    locked = pessimistic_lock(cfs, 10, 10, b"a", b"b", return_values=True)
    assert list(locked.values) == [b"old", b""] and list(locked.not_founds) == [False, True]
    assert lock_record(cfs, b"a") == Lock(LockType.PESSIMISTIC, b"a", 10, 3000, for_update_ts=10)
    assert value_at(cfs, b"a", 20) == b"old"  # pessimistic locks do not block reads
    assert pessimistic_lock(cfs, 11, 11, b"a").errors[0].locked.lock_type == pb.PessimisticLock
    response = prewrite(cfs, 10, put(b"a", b"new"), put(b"b", b"b"), for_update_ts=10,
                        pessimistic_actions=[pb.PrewriteRequest.DO_PESSIMISTIC_CHECK] * 2)
    assert not response.errors
    assert lock_record(cfs, b"a") == Lock(LockType.PUT, b"a", 10, 3000, b"new", for_update_ts=10)
    commit(cfs, 10, 20, b"a", b"b")
    assert value_at(cfs, b"a", 20) == b"new"


def test_pessimistic_lock_conflicts_and_rollback() -> None:
    cfs = new_cfs()
    write_txn(cfs, 15, 20, put(b"a", b"v"))
    conflict = pessimistic_lock(cfs, 10, 12, b"a").errors[0].conflict
    assert (conflict.reason, conflict.conflict_commit_ts) == (pb.WriteConflict.PessimisticRetry, 20)
    assert not pessimistic_lock(cfs, 10, 21, b"a").errors
    run(cfs, percolator.pessimistic_rollback,
        pb.PessimisticRollbackRequest(start_version=10, for_update_ts=20, keys=[b"a"]))
    assert lock_record(cfs, b"a") is not None  # locked at 21, later than the rollback's 20
    run(cfs, percolator.pessimistic_rollback,
        pb.PessimisticRollbackRequest(start_version=10, for_update_ts=21, keys=[b"a"]))
    assert lock_record(cfs, b"a") is None
    checked = [pb.PrewriteRequest.DO_PESSIMISTIC_CHECK]
    missing = prewrite(cfs, 10, put(b"a", b"v"), for_update_ts=21, pessimistic_actions=checked)
    assert missing.errors[0].abort.startswith("PessimisticLockNotFound")  # a changed since the txn began
    amended = prewrite(cfs, 10, put(b"c", b"v"), for_update_ts=21, pessimistic_actions=checked)
    assert not amended.errors and lock_record(cfs, b"c").for_update_ts == 21  # c did not: amended
    prewrite(cfs, 30, put(b"d", b"v"))
    other = prewrite(cfs, 31, put(b"d", b"w"), for_update_ts=31)
    assert other.errors[0].locked.lock_ttl == 0  # a pessimistic txn resolves such locks at once


# --- GC and delete range --------------------------------------------------------------------

def test_gc_keeps_what_reads_at_the_safe_point_see() -> None:
    cfs = new_cfs()
    write_txn(cfs, 1, 2, put(b"a", LONG))
    write_txn(cfs, 3, 4, put(b"a", b"v4"), put(b"b", b"b4"))
    write_txn(cfs, 5, 6, mutation(pb.Lock, b"a"), mutation(pb.Del, b"b"))
    run(cfs, percolator.batch_rollback, pb.BatchRollbackRequest(start_version=7, keys=[b"a"]))
    write_txn(cfs, 9, 10, put(b"a", b"v10"))
    cfs.apply(percolator.gc(TxnReader(cfs), 8))
    assert [commit_ts for commit_ts, _ in TxnReader(cfs).writes(b"a")] == [10, 4]
    assert list(TxnReader(cfs).writes(b"b")) == [] and cfs.data["default"] == {}
    assert value_at(cfs, b"a", 8) == b"v4" and value_at(cfs, b"a", 10) == b"v10" and value_at(cfs, b"b", 8) is None


def test_delete_range() -> None:
    cfs = new_cfs()
    write_txn(cfs, 1, 2, put(b"a", b"1"), put(b"b", LONG), put(b"c", b"3"))
    prewrite(cfs, 3, put(b"b", b"x"))
    assert percolator.delete_range(pb.DeleteRangeRequest(start_key=b"b", end_key=b"c", notify_only=True)) == []
    cfs.delete_ranges(percolator.delete_range(pb.DeleteRangeRequest(start_key=b"b", end_key=b"c")))
    assert cfs.data["lock"] == {} and cfs.data["default"] == {}
    assert [value_at(cfs, k, 5) for k in (b"a", b"b", b"c")] == [b"1", None, b"3"]


# --- model check ----------------------------------------------------------------------------

class Model:
    """Independent expectation: per key, the committed (commit_ts, value or None) in order; and
    snapshot isolation's rules checked on every commit (first committer wins, inserts are new)."""

    def __init__(self) -> None:
        self.history: dict[bytes, list[tuple[int, bytes | None]]] = {}
        self.last_write: dict[bytes, int] = {}

    def commit(self, start_ts: int, commit_ts: int, mutations: list[pb.Mutation]) -> None:
        for m in mutations:
            assert self.last_write.get(m.key, 0) < start_ts, f"lost update on {m.key!r}"
            assert m.op != pb.Insert or self.read(m.key, start_ts) is None, f"insert over {m.key!r}"
            self.last_write[m.key] = commit_ts
        for m in mutations:
            if m.op in (pb.Put, pb.Insert):
                self.history.setdefault(m.key, []).append((commit_ts, m.value))
            elif m.op == pb.Del:
                self.history.setdefault(m.key, []).append((commit_ts, None))

    def read(self, key: bytes, at: int) -> bytes | None:
        versions = [v for c, v in self.history.get(key, []) if c <= at]
        return versions[-1] if versions else None


class Client:
    """A Percolator client as client-rust behaves: resolves locks it meets (cleanup of the
    primary with current_ts 0, then resolve lock), crashes at random."""

    def __init__(self, cfs: MemoryCFs, rng: random.Random) -> None:
        self.cfs, self.rng, self.clock = cfs, rng, 100

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def resolve(self, locked: pb.LockInfo) -> None:
        """client-rust: cleanup of the primary; TiDB: check_txn_status with the lock's TTL over."""
        if self.rng.random() < 0.5:
            decided = run(self.cfs, percolator.cleanup, pb.CleanupRequest(
                key=locked.primary_lock, start_version=locked.lock_version))
        else:
            decided = run(self.cfs, percolator.check_txn_status, pb.CheckTxnStatusRequest(
                primary_key=locked.primary_lock, lock_ts=locked.lock_version, caller_start_ts=self.clock,
                current_ts=ts(1 << 40), rollback_if_not_exist=True))
            assert decided.lock_ttl == 0  # decided: committed or rolled back now
        assert not decided.HasField("error")
        run(self.cfs, percolator.resolve_lock, pb.ResolveLockRequest(
            start_version=locked.lock_version, commit_version=decided.commit_version))

    def get(self, key: bytes, at: int) -> bytes | None:
        for _ in range(20):
            response = get(self.cfs, key, at)
            if not response.HasField("error"):
                return None if response.not_found else response.value
            self.resolve(response.error.locked)
        raise AssertionError("unresolvable lock")

    def scan(self, at: int, reverse: bool) -> dict[bytes, bytes]:
        for _ in range(20):
            request = pb.ScanRequest(version=at, reverse=reverse, limit=1000)
            pairs = txn_reads.kv_scan(TxnReader(self.cfs), request).pairs
            errors = [p.error.locked for p in pairs if p.HasField("error")]
            if not errors:
                keys = [p.key for p in pairs]
                assert keys == sorted(keys, reverse=reverse)
                return {p.key: p.value for p in pairs}
            for locked in errors:
                self.resolve(locked)
        raise AssertionError("unresolvable locks")


def _random_mutations(rng: random.Random, keys: list[bytes]) -> list[pb.Mutation]:
    chosen = rng.sample(keys, rng.randint(1, 4))
    ops = []
    for key in chosen:
        kind = rng.random()
        if kind < 0.55:
            ops.append(put(key, LONG + key if rng.random() < 0.3 else b"v%d" % rng.randrange(1000)))
        elif kind < 0.8:
            ops.append(mutation(pb.Del, key))
        elif kind < 0.9:
            ops.append(mutation(pb.Lock, key))
        else:
            ops.append(pb.Mutation(op=pb.Insert, key=key, value=b"ins"))
    return ops


@pytest.mark.parametrize("seed", range(6))
def test_model_check_random_transactions(seed: int) -> None:
    rng = random.Random(seed)
    cfs, model = new_cfs(), Model()
    client = Client(cfs, rng)
    keys = [b"k%02d" % i for i in range(12)] + [b"", b"k\x00", b"k\x00\x00\xff"]
    begun: list[tuple[int, list[pb.Mutation]]] = []
    active: list[tuple[int, list[pb.Mutation]]] = []
    for _ in range(500):
        step = rng.random()
        if step < 0.15:
            begun.append((client.tick(), _random_mutations(rng, keys)))
        elif step < 0.3 and begun:
            start, mutations = begun.pop(rng.randrange(len(begun)))
            response = prewrite(cfs, start, *mutations, ttl=rng.choice([0, 3000]))
            for error in response.errors:
                if error.HasField("locked") and rng.random() < 0.5:
                    client.resolve(error.locked)
            if response.errors:
                run(cfs, percolator.batch_rollback, pb.BatchRollbackRequest(
                    start_version=start, keys=[m.key for m in mutations]))
            else:
                active.append((start, mutations))
        elif step < 0.55 and active:
            start, mutations = active.pop(rng.randrange(len(active)))
            if rng.random() < 0.1:
                continue  # the client dies before committing: readers roll it back
            commit_ts = client.tick()
            primary = commit(cfs, start, commit_ts, mutations[0].key)
            if primary.HasField("error"):
                assert primary.error.HasField("txn_lock_not_found")  # a reader rolled it back
                continue
            model.commit(start, commit_ts, mutations)
            if rng.random() < 0.8:  # else: dies after the primary; readers commit the rest
                assert not commit(cfs, start, commit_ts, *(m.key for m in mutations[1:])).HasField("error")
        elif step < 0.85:
            at = rng.randint(100, client.tick())
            key = rng.choice(keys)
            assert client.get(key, at) == model.read(key, at), (key, at)
        else:
            at = rng.randint(100, client.tick())
            expected = {k: model.read(k, at) for k in keys}
            assert client.scan(at, rng.random() < 0.5) == {k: v for k, v in expected.items() if v is not None}
    safe_point = client.tick()
    for start, mutations in active:
        run(cfs, percolator.batch_rollback,
            pb.BatchRollbackRequest(start_version=start, keys=[m.key for m in mutations]))
    client.scan(safe_point, reverse=False)  # resolves every lock left behind
    cfs.apply(percolator.gc(TxnReader(cfs), safe_point))
    for key in keys:
        assert client.get(key, safe_point) == model.read(key, safe_point)
        assert len(list(TxnReader(cfs).writes(key, safe_point))) <= 1
    referenced = {append_ts(encode_bytes(k), w.start_ts) for k in keys for _, w in TxnReader(cfs).writes(k)
                  if w.write_type == WriteType.PUT and w.short_value is None}
    assert set(cfs.data["default"]) == referenced  # no orphaned long values


def test_prewrite_converts_own_pessimistic_lock_whatever_the_action() -> None:
    cfs = new_cfs()
    pessimistic_lock(cfs, 10, 10, b"a")
    assert not prewrite(cfs, 10, put(b"a", LONG), for_update_ts=10).errors
    assert lock_record(cfs, b"a") == Lock(LockType.PUT, b"a", 10, 3000, for_update_ts=10)
    assert cfs.data["default"] == {append_ts(encode_bytes(b"a"), 10): LONG}


def test_skip_constraint_check_skips_the_newer_version_check() -> None:
    cfs = new_cfs()
    write_txn(cfs, 15, 20, put(b"k", b"v"))
    assert not prewrite(cfs, 10, pb.Mutation(op=pb.Insert, key=b"k", value=b"x"), skip_constraint_check=True).errors


@pytest.mark.parametrize("size", [2, 256])
def test_gc_as_tikvs_own_test(size: int) -> None:
    """tikv src/storage/txn/actions/gc.rs test_gc_imp, short and long values."""
    cfs = new_cfs()
    v1, v2, v3, v4 = (c * size for c in (b"1", b"2", b"3", b"4"))
    write_txn(cfs, 5, 10, put(b"k", v1))
    write_txn(cfs, 15, 20, put(b"k", v2))
    write_txn(cfs, 25, 30, mutation(pb.Del, b"k"))
    write_txn(cfs, 35, 40, put(b"k", v3))
    write_txn(cfs, 45, 50, mutation(pb.Lock, b"k"))
    prewrite(cfs, 55, put(b"k", v4))
    run(cfs, percolator.batch_rollback, pb.BatchRollbackRequest(start_version=55, keys=[b"k"]))

    def gc(safe_point: int) -> None:
        cfs.apply(percolator.gc(TxnReader(cfs), safe_point))

    gc(12)
    assert value_at(cfs, b"k", 12) == v1
    gc(22)
    assert value_at(cfs, b"k", 22) == v2 and value_at(cfs, b"k", 12) is None
    gc(32)
    assert value_at(cfs, b"k", 22) is None and value_at(cfs, b"k", 35) is None
    gc(60)
    assert value_at(cfs, b"k", 62) == v3
    assert [commit_ts for commit_ts, _ in TxnReader(cfs).writes(b"k")] == [40]
    assert len(cfs.data["default"]) == (1 if size > 255 else 0)


def test_max_ts_only_rises_and_ignores_the_max_ts() -> None:
    manager = ConcurrencyManager(100)
    manager.update_max_ts(50)
    manager.update_max_ts(TS_MAX)  # a read of the latest (TiKV skips it)
    assert manager.max_ts() == 100
    manager.update_max_ts(120)
    assert manager.max_ts() == 120


def test_a_region_is_synced_again_after_its_leadership_left() -> None:
    manager = ConcurrencyManager(100)
    assert not manager.is_synced(7)
    manager.sync(7, 300)
    assert manager.is_synced(7) and manager.max_ts() == 300
    manager.forget(7)
    assert not manager.is_synced(7) and manager.max_ts() == 300


# --- async commit, model-checked ------------------------------------------------------------

class AsyncModel(Model):
    """An async-commit txn may commit at another txn's start ts (its commit ts comes from the
    store's max ts, not from PD): a txn starting there reads it, so that is no lost update."""

    def commit(self, start_ts: int, commit_ts: int, mutations: list[pb.Mutation]) -> None:
        for m in mutations:
            self.last_write[m.key] = min(self.last_write.get(m.key, 0), start_ts - 1)
        super().commit(start_ts, commit_ts, mutations)


class AsyncClient(Client):
    """TiDB's client-go with async commit over one store: reads raise the store's max ts,
    prewrites take min_commit_ts above it, and a lock whose primary answers use_async_commit is
    decided from CheckSecondaryLocks (br_common.lock_resolver.async_commit_ts), then resolved
    on the txn's keys (resolve lock lite)."""

    def __init__(self, cfs: MemoryCFs, rng: random.Random) -> None:
        super().__init__(cfs, rng)
        self.manager = ConcurrencyManager()

    def resolve(self, locked: pb.LockInfo) -> None:
        start = locked.lock_version
        status = run(self.cfs, percolator.check_txn_status, pb.CheckTxnStatusRequest(
            primary_key=locked.primary_lock, lock_ts=start, caller_start_ts=self.clock,
            current_ts=ts(1 << 40), rollback_if_not_exist=True))
        assert not status.HasField("error")
        if not (status.lock_ttl and status.lock_info.use_async_commit):
            assert status.lock_ttl == 0
            run(self.cfs, percolator.resolve_lock, pb.ResolveLockRequest(
                start_version=start, commit_version=status.commit_version))
            return
        secondaries = list(status.lock_info.secondaries)
        checks = [(len(secondaries), run(self.cfs, percolator.check_secondary_locks, pb.CheckSecondaryLocksRequest(
            keys=secondaries, start_version=start)))] if secondaries else []
        commit_ts = async_commit_ts(start, status.lock_info.min_commit_ts, checks)
        resolved = run(self.cfs, percolator.resolve_lock, pb.ResolveLockRequest(
            start_version=start, commit_version=commit_ts, keys=[locked.primary_lock, *secondaries]))
        assert not resolved.HasField("error"), resolved

    def get(self, key: bytes, at: int) -> bytes | None:
        self.manager.update_max_ts(at)
        return super().get(key, at)

    def scan(self, at: int, reverse: bool) -> dict[bytes, bytes]:
        self.manager.update_max_ts(at)
        return super().scan(at, reverse)


@pytest.mark.parametrize("seed", range(6))
def test_model_check_async_commit_transactions(seed: int) -> None:
    """Each key prewritten in its own step (reads and resolvers interleave); a txn whose every
    prewrite succeeded is committed at the largest min_commit_ts, whether its client then
    commits every key, some or none; clients die at any point. Every read matches the model,
    then and at the end (a commit ts below an earlier read's ts would change what it read)."""
    rng = random.Random(seed)
    cfs, model = new_cfs(), AsyncModel()
    client = AsyncClient(cfs, rng)
    keys = [b"k%02d" % i for i in range(10)]
    prewriting: list[dict] = []
    seen: list[tuple[bytes, int, bytes | None]] = []
    for _ in range(500):
        step = rng.random()
        if step < 0.12:
            mutations = _random_mutations(rng, keys)
            prewriting.append({"start": client.tick(), "mutations": mutations, "done": 0, "commit_ts": 0})
        elif step < 0.45 and prewriting:
            txn = prewriting[rng.randrange(len(prewriting))]
            if rng.random() < 0.05:
                prewriting.remove(txn)  # the client dies mid-prewrite: resolvers roll it back
                continue
            _async_prewrite_step(client, model, prewriting, txn)
        elif step < 0.75:
            at = rng.randint(100, client.tick())
            key = rng.choice(keys)
            seen.append((key, at, client.get(key, at)))
            assert seen[-1][2] == model.read(key, at), (key, at)
        else:
            at = rng.randint(100, client.tick())
            got = client.scan(at, rng.random() < 0.5)
            seen.extend((k, at, got.get(k)) for k in keys)
            assert all(got.get(k) == model.read(k, at) for k in keys), at
    assert [(k, at, v) for k, at, v in seen if model.read(k, at) != v] == []  # repeatable
    at = client.tick()
    assert client.scan(at, reverse=False) == {k: v for k in keys if (v := model.read(k, at)) is not None}
    assert all(Lock.parse(v).lock_type == LockType.LOCK for v in cfs.data["lock"].values())  # never block reads


def _async_prewrite_step(client: AsyncClient, model: AsyncModel, prewriting: list[dict], txn: dict) -> None:
    """The txn's next key; on an error the client rolls back what it wrote (or dies first)."""
    cfs, mutations, start = client.cfs, txn["mutations"], txn["start"]
    req = pb.PrewriteRequest(mutations=[mutations[txn["done"]]], primary_lock=mutations[0].key, start_version=start,
                             lock_ttl=3000, use_async_commit=True, secondaries=[m.key for m in mutations[1:]])
    response = run(cfs, percolator.prewrite, req, client.manager.max_ts())
    if response.errors:
        prewriting.remove(txn)
        if client.rng.random() < 0.8:
            run(cfs, percolator.batch_rollback, pb.BatchRollbackRequest(
                start_version=start, keys=[m.key for m in mutations]))
        return
    txn["done"] += 1
    txn["commit_ts"] = max(txn["commit_ts"], response.min_commit_ts)
    if txn["done"] < len(mutations):
        return
    prewriting.remove(txn)  # committed: its user is told so, whatever happens next
    model.commit(start, txn["commit_ts"], mutations)
    client.clock = max(client.clock, txn["commit_ts"])
    committed = client.rng.sample(mutations, client.rng.randint(0, len(mutations)))
    if committed:
        answer = commit(cfs, start, txn["commit_ts"], *(m.key for m in committed))
        assert not answer.HasField("error"), answer
