"""mvcc_scan's forward pass gives what per-key reads give (TxnReader's seeks), on random data
with locks, several versions, rollbacks, deletes, long values and gc fences."""
from __future__ import annotations

import random

import pytest

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.txn_codec import Lock, LockType, Write, WriteType
from br_devcluster.store.mvcc_scan import forward_keys
from br_devcluster.store.txn_backup_scan import BackupLocked, backup_entries
from br_devcluster.store.txn_reader import TxnReader, default_key, lock_blocks_read, lock_key, write_key
from br_devcluster.store.txn_reads import read_key, scan_entries
from tests.doubles import MemoryCFs


def random_cfs(rng: random.Random, keys: int = 60) -> MemoryCFs:
    cfs = MemoryCFs()
    for raw in sorted({bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) for _ in range(keys)}):
        ts = 10
        for _ in range(rng.randrange(0, 4)):
            kind = rng.choice([WriteType.PUT, WriteType.PUT, WriteType.DELETE, WriteType.ROLLBACK, WriteType.LOCK])
            start, commit = ts, ts + rng.randrange(0, 3)
            ts = commit + 1 + rng.randrange(5)
            value = bytes([rng.randrange(256)]) * rng.choice([3, 300])
            short = value if len(value) <= 255 else None
            fence = rng.choice([None, None, None, commit + 2])
            write = Write(kind, start, short if kind == WriteType.PUT else None, gc_fence=fence)
            cfs.apply([("write", write_key(raw, commit), write.to_bytes())])
            if kind == WriteType.PUT and short is None:
                cfs.apply([("default", default_key(raw, start), value)])
        if rng.random() < 0.15:
            lock_type = rng.choice([LockType.PUT, LockType.DELETE, LockType.LOCK])
            lock = Lock(lock_type, raw, ts, 3000, b"lv" if lock_type == LockType.PUT else None)
            cfs.apply([("lock", lock_key(raw), lock.to_bytes())])
    return cfs


@pytest.mark.parametrize("seed", range(8))
def test_forward_reads_equal_per_key_reads(seed: int) -> None:
    rng = random.Random(seed)
    cfs = random_cfs(rng)
    reader = TxnReader(cfs)
    for ts in (5, 15, 25, 40, 1 << 40):
        ctx = pb.Context()
        expected = []
        for raw in reader.user_keys(b"", None):
            error, value, _ = read_key(reader, raw, ts, ctx)
            if error is not None or value is not None:
                expected.append((raw, error, value))
        assert list(scan_entries(reader, b"", None, ts, ctx)) == expected
        assert [k.raw_key for k in forward_keys(cfs, b"", None)] == list(reader.user_keys(b"", None))


@pytest.mark.parametrize("seed", range(8))
def test_backup_entries_equal_per_key_reads(seed: int) -> None:
    rng = random.Random(seed)
    cfs = random_cfs(rng)
    reader = TxnReader(cfs)
    for after_ts, backup_ts in ((0, 25), (12, 30), (0, 1 << 40)):
        locked = [raw for raw, lock in reader.locks(b"", None) if lock_blocks_read(lock, raw, backup_ts)]
        if locked:
            with pytest.raises(BackupLocked) as caught:
                list(backup_entries(reader, b"", None, after_ts, backup_ts))
            assert caught.value.lock.key == locked[0]
            continue
        got = {e.raw_key: e for e in backup_entries(reader, b"", None, after_ts, backup_ts)}
        for raw in reader.user_keys(b"", None):
            found = next(iter(reader.writes(raw, backup_ts)), None)
            visible = reader.visible_write(raw, backup_ts)
            if raw in got:
                entry = got[raw]
                assert entry.commit_ts > after_ts
                if entry.value or entry.long_value:
                    assert visible is not None and visible[0] == entry.commit_ts
                    assert entry.value == reader.value_of(raw, visible[1])
            elif visible is not None and found is not None:
                assert visible[0] <= after_ts
