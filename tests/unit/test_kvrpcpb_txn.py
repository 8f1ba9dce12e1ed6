"""The transactional kvrpcpb messages and Kv* RPCs carry kvproto's names and numbers
(../shared/reference/tikv-txn.md A4), so that real TiKV clients talk to the devcluster."""
from __future__ import annotations

import pytest

from br_common.kvproto import kvrpcpb_pb2, tikvpb_pb2

FIELDS = {
    "KeyError": {"locked": 1, "retryable": 2, "abort": 3, "conflict": 4, "already_exist": 5,
                 "deadlock": 6, "commit_ts_expired": 7, "txn_not_found": 8, "commit_ts_too_large": 9,
                 "assertion_failed": 10, "primary_mismatch": 11, "txn_lock_not_found": 12},
    "GetRequest": {"context": 1, "key": 2, "version": 3, "need_commit_ts": 4},
    "GetResponse": {"region_error": 1, "error": 2, "value": 3, "not_found": 4, "commit_ts": 7},
    "ScanRequest": {"context": 1, "start_key": 2, "limit": 3, "version": 4, "key_only": 5,
                    "reverse": 6, "end_key": 7, "sample_step": 8},
    "BatchGetResponse": {"region_error": 1, "pairs": 2, "error": 5},
    "PrewriteRequest": {"context": 1, "mutations": 2, "primary_lock": 3, "start_version": 4,
                        "lock_ttl": 5, "skip_constraint_check": 6, "pessimistic_actions": 7,
                        "txn_size": 8, "for_update_ts": 9, "min_commit_ts": 10, "use_async_commit": 11,
                        "secondaries": 12, "try_one_pc": 13, "max_commit_ts": 14, "assertion_level": 15,
                        "for_update_ts_constraints": 16, "txn_file_chunks": 100},
    "PrewriteResponse": {"region_error": 1, "errors": 2, "min_commit_ts": 3, "one_pc_commit_ts": 4},
    "CommitRequest": {"context": 1, "start_version": 2, "keys": 3, "commit_version": 4,
                      "primary_key": 7, "use_async_commit": 8, "is_txn_file": 100},
    "CheckTxnStatusRequest": {"context": 1, "primary_key": 2, "lock_ts": 3, "caller_start_ts": 4,
                              "current_ts": 5, "rollback_if_not_exist": 6, "force_sync_commit": 7,
                              "resolving_pessimistic_lock": 8, "verify_is_primary": 9, "is_txn_file": 100},
    "CheckTxnStatusResponse": {"region_error": 1, "error": 2, "lock_ttl": 3, "commit_version": 4,
                               "action": 5, "lock_info": 6},
    "LockInfo": {"primary_lock": 1, "lock_version": 2, "key": 3, "lock_ttl": 4, "txn_size": 5,
                 "lock_type": 6, "lock_for_update_ts": 7, "use_async_commit": 8, "min_commit_ts": 9,
                 "secondaries": 10, "duration_to_last_update_ms": 11, "shared_lock_infos": 12,
                 "is_txn_file": 100},
    "WriteConflict": {"start_ts": 1, "conflict_ts": 2, "key": 3, "primary": 4,
                      "conflict_commit_ts": 5, "reason": 6},
    "ResolveLockRequest": {"context": 1, "start_version": 2, "commit_version": 3, "txn_infos": 4,
                           "keys": 5, "is_async": 6, "is_txn_file": 100},
    "ScanLockRequest": {"context": 1, "max_version": 2, "start_key": 3, "limit": 4, "end_key": 5},
    "PessimisticLockRequest": {"context": 1, "mutations": 2, "primary_lock": 3, "start_version": 4,
                               "lock_ttl": 5, "for_update_ts": 6, "is_first_lock": 7, "wait_timeout": 8,
                               "force": 9, "return_values": 10, "min_commit_ts": 11,
                               "check_existence": 12, "lock_only_if_exists": 13, "wake_up_mode": 14},
}


@pytest.mark.parametrize("message", sorted(FIELDS))
def test_field_numbers_match_kvproto(message: str) -> None:
    descriptor = getattr(kvrpcpb_pb2, message).DESCRIPTOR
    numbers = {f.name: f.number for f in descriptor.fields}
    assert {name: numbers.get(name) for name in FIELDS[message]} == FIELDS[message]


def test_enums_match_kvproto() -> None:
    assert [(v.name, v.number) for v in kvrpcpb_pb2.Op.DESCRIPTOR.values] == [
        ("Put", 0), ("Del", 1), ("Lock", 2), ("Rollback", 3), ("Insert", 4), ("PessimisticLock", 5),
        ("CheckNotExists", 6), ("SharedLock", 7), ("SharedPessimisticLock", 8)]
    assert kvrpcpb_pb2.Action.Value("LockNotExistDoNothing") == 5
    assert kvrpcpb_pb2.WriteConflict.Reason.Value("SelfRolledBack") == 3
    assert kvrpcpb_pb2.Assertion.Value("NotExist") == 2


def test_kv_rpc_names() -> None:
    methods = {m.name for m in tikvpb_pb2.DESCRIPTOR.services_by_name["Tikv"].methods}
    assert {"KvGet", "KvScan", "KvPrewrite", "KvPessimisticLock", "KVPessimisticRollback",
            "KvTxnHeartBeat", "KvCheckTxnStatus", "KvCheckSecondaryLocks", "KvCommit", "KvCleanup",
            "KvBatchGet", "KvBatchRollback", "KvScanLock", "KvResolveLock", "KvGC",
            "KvDeleteRange"} <= methods
    assert {"RawGet", "RawPut", "RawBatchPut", "RawDelete", "RawScan", "RawChecksum"} <= methods
