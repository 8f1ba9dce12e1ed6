"""Random MVCC histories for model tests: each fast path that skips the general forward scan
(checksum_scan.add_visible, txn_backup_scan.lock_free_entries) must read them as it does."""
from __future__ import annotations

import random

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.txn_codec import Write, WriteType, append_ts, decode_bytes, encode_bytes
from br_devcluster.store import percolator
from br_devcluster.store.txn_reader import CF_LOCK, CF_WRITE, Modify, TxnReader
from tests.doubles import MemoryCFs


def run(cfs: MemoryCFs, command, req) -> None:  # noqa: ANN001
    cfs.apply(command(TxnReader(cfs), req).modifies)


def txn(cfs: MemoryCFs, start: int, commit: int | None, writes: dict[bytes, bytes | None]) -> None:
    mutations = [pb.Mutation(op=pb.Put if v is not None else pb.Del, key=k, value=v or b"") for k, v in writes.items()]
    run(cfs, percolator.prewrite, pb.PrewriteRequest(mutations=mutations, primary_lock=mutations[0].key,
                                                     start_version=start, lock_ttl=1000))
    if commit is not None:
        run(cfs, percolator.commit, pb.CommitRequest(start_version=start, commit_version=commit, keys=list(writes)))


def roll_back_locks(cfs: MemoryCFs, start: int) -> None:
    """An uncommitted txn: roll its locks back so the range is lock-free (the fast paths' case)."""
    keys = [decode_bytes(k)[0] for k, _ in cfs.iterate(CF_LOCK, b"", None)]
    if keys:
        run(cfs, percolator.batch_rollback, pb.BatchRollbackRequest(start_version=start, keys=keys))


def random_history(seed: int) -> tuple[MemoryCFs, int]:
    """(lock-free CFs, the last ts used): 25 txns of short, long and deleted values, a fifth
    rolled back, plus the records a percolator run rarely leaves (Lock/Rollback records, a
    gc_fence, extra fields, an overlapped rollback hiding a Put)."""
    rng = random.Random(seed)
    cfs = MemoryCFs()
    keys = [b"k%02d" % i for i in range(12)]
    ts = 10
    for _ in range(25):
        writes = {k: rng.choice([None, b"s" * rng.randint(0, 20), b"L" * rng.choice([255, 256, 400])])
                  for k in rng.sample(keys, rng.randint(1, 4))}
        txn(cfs, ts, ts + 1 if rng.random() < 0.8 else None, writes)
        roll_back_locks(cfs, ts)
        ts += 3
    odd = [Write(WriteType.LOCK, 5), Write(WriteType.ROLLBACK, 6, b"p"), Write(WriteType.PUT, 7, b"fenced", gc_fence=50),
           Write(WriteType.PUT, 8, b"x", last_change_ts=3, versions_to_last_change=1),
           Write(WriteType.ROLLBACK, 9, has_overlapped_rollback=True, gc_fence=40)]
    for i, write in enumerate(odd):
        cfs.apply([Modify(CF_WRITE, append_ts(encode_bytes(b"odd%d" % i), 12 + i), write.to_bytes())])
    fenced = encode_bytes(b"fenced-rollback")  # a Put under a rollback whose gc_fence hides it from ts 30 on
    cfs.apply([Modify(CF_WRITE, append_ts(fenced, 12), Write(WriteType.PUT, 11, b"old").to_bytes()),
               Modify(CF_WRITE, append_ts(fenced, 20), Write(WriteType.ROLLBACK, 20, has_overlapped_rollback=True,
                                                              gc_fence=30).to_bytes())])
    return cfs, ts
