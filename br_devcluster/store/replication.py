"""Calls to the other stores' DevStore service (replication, ingest, range drops).

Channels are cached per store id and address; an address is learnt from PD's GetStore and
re-learnt after a call fails to connect (a restarted store may come back on another port).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import grpc

from br_common.grpc_tls import open_channel
from br_common.kvproto import devclusterpb_pb2, devclusterpb_pb2_grpc
from br_common.pd_client import PDClient, PDError
from br_devcluster.store.engine import RawWrite
from br_devcluster.store.txn_reader import CF_DEFAULT, DeleteRange, Modify
from br_devcluster.store.errors import StoreError

CHUNK_BYTES = 4 * 1024 * 1024
CALL_TIMEOUT = 60.0


class PeerClients:
    def __init__(self, pd: PDClient) -> None:
        self._pd = pd
        self._lock = threading.Lock()
        self._channels: dict[int, tuple[str, grpc.Channel]] = {}

    def close(self) -> None:
        with self._lock:
            for _, channel in self._channels.values():
                channel.close()
            self._channels.clear()

    def apply_writes(self, store_id: int, region_id: int, entries: Iterable[RawWrite]) -> None:
        """Send raw KV writes of the default CF (the raw service's batches) to store_id."""
        self.apply_modifies(store_id, region_id, (Modify(CF_DEFAULT, key, value) for key, value in entries))

    def apply_modifies(self, store_id: int, region_id: int, modifies: Iterable[Modify],
                       ranges: Iterable[DeleteRange] = ()) -> None:
        """Send a batch to store_id in ~4 MiB chunks, the range deletions with the first one
        (a follower applies each chunk as one write batch, deletions first, as the leader did)."""
        deletions = [devclusterpb_pb2.RangeDeletion(cf=cf, start_key=start, end_key=end or b"")
                     for cf, start, end in ranges]
        for chunk in chunks(modifies, first=bool(deletions)):
            request = devclusterpb_pb2.ApplyWritesRequest(cluster_id=self._pd.cluster_id, region_id=region_id,
                                                          entries=chunk, delete_ranges=deletions)
            deletions = []
            self.call(store_id, "ApplyWrites", request)

    def ingest_replica(self, store_id: int, region_id: int, uuids: list[bytes]) -> None:
        request = devclusterpb_pb2.IngestReplicaRequest(cluster_id=self._pd.cluster_id, region_id=region_id,
                                                        uuids=uuids)
        self.call(store_id, "IngestReplica", request)

    def drop_range(self, store_id: int, start_key: bytes, end_key: bytes) -> None:
        request = devclusterpb_pb2.DropRangeRequest(cluster_id=self._pd.cluster_id, start_key=start_key,
                                                    end_key=end_key)
        self.call(store_id, "DropRange", request)

    def call(self, store_id: int, method: str, request) -> devclusterpb_pb2.AdminResponse:  # noqa: ANN001
        """One retry on a fresh address when the store cannot be reached; raises StoreError."""
        for attempt in range(2):
            stub = self._stub(store_id, refresh=attempt > 0)
            try:
                response = getattr(stub, method)(request, timeout=CALL_TIMEOUT)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE and attempt == 0:
                    continue
                raise StoreError(f"store {store_id}: {method} failed: {exc.code().name}: {exc.details()}") from None
            if response.error:
                raise StoreError(f"store {store_id}: {method}: {response.error}")
            return response
        raise AssertionError("unreachable")

    def _stub(self, store_id: int, refresh: bool) -> devclusterpb_pb2_grpc.DevStoreStub:
        with self._lock:
            cached = self._channels.get(store_id)
        if cached is None or refresh:
            try:
                address = self._pd.store(store_id).address
            except PDError as exc:
                raise StoreError(f"cannot find store {store_id}: {exc}") from None
            with self._lock:
                cached = self._channels.get(store_id)
                if cached is None or cached[0] != address:
                    if cached is not None:
                        cached[1].close()
                    cached = (address, open_channel(address, self._pd.tls))
                    self._channels[store_id] = cached
        return devclusterpb_pb2_grpc.DevStoreStub(cached[1])


def chunks(modifies: Iterable[Modify], limit: int = CHUNK_BYTES,
           first: bool = False) -> Iterator[list[devclusterpb_pb2.RawEntry]]:
    """RawEntry lists of about `limit` bytes each (never empty, unless `first` asks for at least
    one list to carry range deletions)."""
    chunk: list[devclusterpb_pb2.RawEntry] = []
    size = 0
    for cf, key, value in modifies:
        cf = "" if cf == CF_DEFAULT else cf
        if value is None:
            chunk.append(devclusterpb_pb2.RawEntry(key=key, delete=True, cf=cf))
        else:
            chunk.append(devclusterpb_pb2.RawEntry(key=key, value=value, cf=cf))
        size += len(key) + len(value or b"")
        if size >= limit:
            yield chunk
            chunk, size, first = [], 0, False
    if chunk or first:
        yield chunk
