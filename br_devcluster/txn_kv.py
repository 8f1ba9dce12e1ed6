"""Transactional writes for the devcluster's own tools (`br-devcluster load --txn`, `checksum
--txn`): Percolator's two phases over the Kv* API, routed by region as RawKVClient does but with
keys located by their encoding (regions hold engine keys); checksum_at is the product's
Coprocessor checksum client (br_common.txn_checksum). A minimal writer: a conflicting lock fails
the transaction, which is rolled back; tests use pingcap's own client for the full protocol.
"""
from __future__ import annotations

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.tikv_client import Pair, RawKVError
from br_common.txn_checksum import TxnChecksum

LOCK_TTL_MS = 3000


class TxnError(RawKVError):
    """The transaction failed (a conflict or a lock of another transaction) and was rolled back."""


class TxnKV(TxnChecksum):
    def commit(self, pairs: list[Pair]) -> int:
        """Write the pairs as one transaction; returns its commit ts."""
        if not pairs:
            raise ValueError("a transaction needs at least one pair")
        values = dict(pairs)
        start_ts, primary = self.pd.tso(), pairs[0][0]
        groups = self._by_region(values)  # located once: prewrite and commit share them
        for _, response in self._per_region(list(values), "KvPrewrite", lambda ctx, keys: pb.PrewriteRequest(
                context=ctx, primary_lock=primary, start_version=start_ts, lock_ttl=LOCK_TTL_MS,
                txn_size=len(values), mutations=[pb.Mutation(op=pb.Put, key=k, value=values[k]) for k in keys]),
                groups):
            if response.errors:
                self._rollback(list(values), start_ts)
                raise TxnError(f"prewrite of txn {start_ts} failed: {response.errors[0]}")
        commit_ts = self.pd.tso()
        # the primary decides the txn: its region's group goes first (as client-go's primary batch)
        first = [group for group in groups if primary in group[1]]
        rest = [group for group in groups if primary not in group[1]]
        for located in (first, rest):
            for _, response in self._per_region([], "KvCommit", lambda ctx, group: pb.CommitRequest(
                    context=ctx, start_version=start_ts, keys=group, commit_version=commit_ts), located):
                if response.HasField("error"):
                    raise TxnError(f"commit of txn {start_ts} failed: {response.error}")
        return commit_ts

    def _rollback(self, keys: list[bytes], start_ts: int) -> None:
        self._per_region(keys, "KvBatchRollback",
                         lambda ctx, group: pb.BatchRollbackRequest(context=ctx, start_version=start_ts, keys=group))
