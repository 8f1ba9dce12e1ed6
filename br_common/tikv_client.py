"""Raw KV client routed by region through PD (a real PD/TiKV or br_devcluster's).

Used by br (the restore's empty-target check and RawChecksum verification), `br-devcluster
load/checksum` and the tests. Every request carries a kvrpcpb.Context (region id, epoch, leader peer); on a
region error or an unreachable store the region is re-resolved through PD and the request
retried with capped exponential backoff, a bounded number of times.
"""
from __future__ import annotations

import bisect
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import zip_longest
from typing import Any

import grpc

from br_common.checksum import Checksum
from br_common.grpc_tls import open_channel
from br_common.kvproto import errorpb_pb2, kvrpcpb_pb2, metapb_pb2, tikvpb_pb2_grpc
from br_common.pd_client import PDClient, RegionInfo
from br_common.redaction import show_key

DEFAULT_BATCH_BYTES = 4 * 1024 * 1024  # per RawBatchPut: well under the gRPC message limit
SCAN_PAGE = 1024
# transport failures worth a re-resolve: the store may have restarted or moved
RETRYABLE_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}

Pair = tuple[bytes, bytes]


class RawKVError(RuntimeError):
    """A store answered with a (non-region) error, or the retries for a request ran out."""


def describe_region_error(err: errorpb_pb2.Error) -> str:
    """A one-line, human-readable account of a region error (for logs and exceptions)."""
    if err.HasField("not_leader"):
        leader = err.not_leader.leader
        where = f"leader on store {leader.store_id}" if leader.store_id else "leader unknown"
        return f"NotLeader(region {err.not_leader.region_id}, {where})"
    if err.HasField("epoch_not_match"):
        ids = [r.id for r in err.epoch_not_match.current_regions]
        return f"EpochNotMatch(current regions {ids})"
    if err.HasField("region_not_found"):
        return f"RegionNotFound(region {err.region_not_found.region_id})"
    if err.HasField("key_not_in_region"):
        k = err.key_not_in_region
        return f"KeyNotInRegion(key {show_key(k.key)} not in region {k.region_id} [{show_key(k.start_key)}, {show_key(k.end_key)}))"
    if err.HasField("server_is_busy"):
        return f"ServerIsBusy({err.server_is_busy.reason})"
    return f"RegionError({err.message or 'unknown'})"


def _in_region(key: bytes, region: metapb_pb2.Region) -> bool:
    return region.start_key <= key and (region.end_key == b"" or key < region.end_key)


def _clip(start: bytes, end: bytes, region: metapb_pb2.Region) -> tuple[bytes, bytes]:
    """[start, end) intersected with the region ("" end = unbounded on both sides)."""
    lo = max(start, region.start_key)
    if region.end_key == b"":
        return lo, end
    return lo, region.end_key if end == b"" else min(end, region.end_key)


def summed_in_store_turns(pieces: list[tuple[int, tuple[bytes, bytes]]],
                          count: Callable[[tuple[bytes, bytes]], Checksum], workers: int) -> Checksum:
    """The checksums of (leader store, range) pieces, `workers` at a time, merged. The pieces are
    taken store by store in turn, so that the requests in flight keep every store counting."""
    by_store: dict[int, list[tuple[bytes, bytes]]] = {}
    for store_id, piece in pieces:
        by_store.setdefault(store_id, []).append(piece)
    ordered = [piece for turn in zip_longest(*by_store.values()) for piece in turn if piece is not None]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(ordered)))) as pool:
        sums = list(pool.map(count, ordered))
    total = Checksum()
    for part in sums:
        total = total.merge(part)
    return total


def _check_range(start: bytes, end: bytes) -> None:
    if end and end < start:
        raise ValueError(f"invalid key range: end {show_key(end)} < start {show_key(start)} (hex)")


class RegionCache:
    """Regions sorted by start key, filled lazily from PD; an entry is dropped on any error."""

    def __init__(self, pd: PDClient) -> None:
        self._pd = pd
        self._lock = threading.Lock()
        self._starts: list[bytes] = []
        self._infos: list[RegionInfo] = []

    def locate(self, key: bytes) -> RegionInfo:
        with self._lock:
            i = bisect.bisect_right(self._starts, key) - 1
            if i >= 0 and _in_region(key, self._infos[i].region):
                return self._infos[i]
        info = self._pd.region(key)
        if info is None:
            raise RawKVError(f"PD knows no region holding key {show_key(key)} (hex)")
        self._insert(info)
        return info

    def _insert(self, info: RegionInfo) -> None:
        with self._lock:
            self._remove_where(lambda r: r.id == info.id or _overlaps(r.region, info.region))
            i = bisect.bisect_left(self._starts, info.region.start_key)
            self._starts.insert(i, info.region.start_key)
            self._infos.insert(i, info)

    def invalidate(self, region_id: int) -> None:
        with self._lock:
            self._remove_where(lambda r: r.id == region_id)

    def set_leader(self, region_id: int, leader: metapb_pb2.Peer) -> None:
        """Trust a NotLeader hint only when the peer belongs to the cached region."""
        with self._lock:
            for i, info in enumerate(self._infos):
                if info.id == region_id:
                    if any(p.store_id == leader.store_id for p in info.region.peers):
                        self._infos[i] = RegionInfo(info.region, leader)
                    else:
                        self._remove_where(lambda r: r.id == region_id)
                    return

    def _remove_where(self, drop: Callable[[RegionInfo], bool]) -> None:
        keep = [(s, r) for s, r in zip(self._starts, self._infos) if not drop(r)]
        self._starts = [s for s, _ in keep]
        self._infos = [r for _, r in keep]


def _overlaps(a: metapb_pb2.Region, b: metapb_pb2.Region) -> bool:
    a_before_b_end = b.end_key == b"" or a.start_key < b.end_key
    b_before_a_end = a.end_key == b"" or b.start_key < a.end_key
    return a_before_b_end and b_before_a_end


class RawKVClient:
    """Thread-safe raw KV over all regions (reads see each region's latest data, as in TiKV)."""

    def __init__(self, pd: PDClient, timeout: float = 60.0, max_attempts: int = 12,
                 backoff_base: float = 0.02, backoff_cap: float = 2.0) -> None:
        self.pd = pd
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self.regions = RegionCache(pd)
        self._lock = threading.Lock()
        self._addresses: dict[int, str] = {}
        self._channels: dict[str, tuple[grpc.Channel, tikvpb_pb2_grpc.TikvStub]] = {}
        # extra gRPC metadata on every request (the devcluster's read ts: br_devcluster.snapshot_kv)
        self.read_metadata: tuple[tuple[str, str], ...] = ()

    def close(self) -> None:
        with self._lock:
            for channel, _ in self._channels.values():
                channel.close()
            self._channels.clear()

    def __enter__(self) -> "RawKVClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- single keys ----------------------------------------------------------------------
    def put(self, key: bytes, value: bytes) -> None:
        self._call_at(key, "RawPut", lambda ctx, _r: kvrpcpb_pb2.RawPutRequest(context=ctx, key=key, value=value))

    def get(self, key: bytes) -> bytes | None:
        _, response = self._call_at(key, "RawGet", lambda ctx, _r: kvrpcpb_pb2.RawGetRequest(context=ctx, key=key))
        return None if response.not_found else response.value

    def delete(self, key: bytes) -> None:
        self._call_at(key, "RawDelete", lambda ctx, _r: kvrpcpb_pb2.RawDeleteRequest(context=ctx, key=key))

    # --- batches ------------------------------------------------------------------------
    def batch_put(self, pairs: Iterable[Pair], batch_bytes: int = DEFAULT_BATCH_BYTES) -> None:
        """Group by region, one RawBatchPut per region and batch; failed batches are regrouped."""
        pending = deque((info, chunk, 0) for info, chunk in self._batches(list(pairs), batch_bytes))
        while pending:
            info, chunk, attempt = pending.popleft()
            request = kvrpcpb_pb2.RawBatchPutRequest(context=self._context(info))
            add = request.pairs.add  # in place: ~3x cheaper than building KvPair objects first
            for key, value in chunk:
                add(key=key, value=value)
            response, reason = self._send(info, "RawBatchPut", request)
            if response is not None:
                continue
            self._backoff(attempt, f"RawBatchPut of {len(chunk)} pairs", reason)
            pending.extend((i, c, attempt + 1) for i, c in self._batches(chunk, batch_bytes))

    def _batches(self, pairs: list[Pair], batch_bytes: int) -> Iterator[tuple[RegionInfo, list[Pair]]]:
        groups: dict[int, tuple[RegionInfo, list[Pair]]] = {}
        for key, value in pairs:
            info = self.regions.locate(key)
            groups.setdefault(info.id, (info, []))[1].append((key, value))
        for info, group in groups.values():
            chunk: list[Pair] = []
            size = 0
            for key, value in group:
                if chunk and size + len(key) + len(value) > batch_bytes:
                    yield info, chunk
                    chunk, size = [], 0
                chunk.append((key, value))
                size += len(key) + len(value)
            if chunk:
                yield info, chunk

    # --- ranges -------------------------------------------------------------------------
    def scan(self, start: bytes = b"", end: bytes = b"", limit: int = SCAN_PAGE, key_only: bool = False) -> list[Pair]:
        """Up to `limit` pairs of [start, end) in key order, across regions (end b"" = unbounded)."""
        out: list[Pair] = []
        for pair in self.iter_scan(start, end, key_only=key_only):
            if len(out) >= limit:
                break
            out.append(pair)
        return out

    def iter_scan(self, start: bytes = b"", end: bytes = b"", key_only: bool = False,
                  page: int = SCAN_PAGE) -> Iterator[Pair]:
        """Every pair of [start, end), paged region by region."""
        _check_range(start, end)
        cursor = start
        while True:
            info, response = self._call_at(cursor, "RawScan", _scan_builder(cursor, end, page, key_only))
            for kv in response.kvs:
                yield kv.key, kv.value
            if len(response.kvs) >= page:  # the region may hold more
                cursor = response.kvs[-1].key + b"\x00"
                continue
            region_end = info.region.end_key
            if region_end == b"" or (end and region_end >= end):
                return
            cursor = region_end

    def checksum(self, start: bytes = b"", end: bytes = b"", workers: int = 4) -> Checksum:
        """crc64xor/total_kvs/total_bytes of [start, end): one RawChecksum per region, merged."""
        _check_range(start, end)
        pieces = [(info.leader_store_id, _clip(start, end, info.region)) for info in self.pd.scan_regions(start, end)]
        return summed_in_store_turns(pieces or [(0, (start, end))], lambda piece: self._checksum_piece(*piece), workers)

    def _checksum_piece(self, start: bytes, end: bytes) -> Checksum:
        """Sequential walk over [start, end); a region split meanwhile just adds a step."""
        total = Checksum()
        cursor = start
        while True:
            info, response = self._call_at(cursor, "RawChecksum", _checksum_builder(cursor, end))
            total = total.merge(Checksum(crc64xor=response.checksum, total_kvs=response.total_kvs,
                                         total_bytes=response.total_bytes))
            region_end = info.region.end_key
            if region_end == b"" or (end and region_end >= end):
                return total
            cursor = region_end

    # --- routing and retries -------------------------------------------------------------
    def _call_at(self, key: bytes, method: str,
                 build: Callable[[kvrpcpb_pb2.Context, metapb_pb2.Region], Any]) -> tuple[RegionInfo, Any]:
        """Send to the leader of the region holding key; retry on region and transport errors."""
        attempt = 0
        while True:
            info = self.regions.locate(key)
            response, reason = self._send(info, method, build(self._context(info), info.region))
            if response is not None:
                return info, response
            self._backoff(attempt, f"{method} at key {show_key(key)}", reason)
            attempt += 1

    def _send(self, info: RegionInfo, method: str, request: Any) -> tuple[Any | None, str]:
        """(response, "") on success, (None, reason) when worth a retry; raises on the rest."""
        if info.leader is None:
            self.regions.invalidate(info.id)
            return None, f"region {info.id} has no leader"
        store_id = info.leader.store_id
        address = self._address(store_id)
        try:
            response = getattr(self._stub(address), method)(request, timeout=self.timeout,
                                                            metadata=self.read_metadata or None)
        except grpc.RpcError as exc:
            reason = f"store {store_id} at {address}: {exc.code().name}: {exc.details()}"
            if exc.code() not in RETRYABLE_CODES:
                raise RawKVError(f"{method} failed on {reason}") from None
            self.regions.invalidate(info.id)
            with self._lock:
                self._addresses.pop(store_id, None)
            return None, reason
        if response.HasField("region_error"):
            return None, self._on_region_error(info, response.region_error)
        error = getattr(response, "error", "")
        if isinstance(error, str) and error:  # transactional responses carry a KeyError instead: their caller's
            raise RawKVError(f"{method} on region {info.id} (store {store_id}): {error}")
        return response, ""

    def _on_region_error(self, info: RegionInfo, err: errorpb_pb2.Error) -> str:
        if err.HasField("not_leader") and err.not_leader.leader.store_id:
            self.regions.set_leader(info.id, err.not_leader.leader)
        else:
            self.regions.invalidate(info.id)
        return describe_region_error(err)

    def _backoff(self, attempt: int, what: str, reason: str) -> None:
        if attempt + 1 >= self.max_attempts:
            raise RawKVError(f"{what}: gave up after {self.max_attempts} attempts; last error: {reason}")
        delay = min(self._backoff_cap, self._backoff_base * 2 ** attempt)
        time.sleep(delay * random.uniform(0.5, 1.0))  # jitter: writers retrying together spread out

    def _context(self, info: RegionInfo) -> kvrpcpb_pb2.Context:
        return kvrpcpb_pb2.Context(region_id=info.id, region_epoch=info.region.region_epoch, peer=info.leader,
                                   cluster_id=self.pd.cluster_id)

    def _address(self, store_id: int) -> str:
        with self._lock:
            address = self._addresses.get(store_id)
        if address is None:
            address = self.pd.store(store_id).address
            if not address:
                raise RawKVError(f"PD knows no address for store {store_id}")
            with self._lock:
                self._addresses[store_id] = address
        return address

    def _stub(self, address: str) -> tikvpb_pb2_grpc.TikvStub:
        with self._lock:
            entry = self._channels.get(address)
            if entry is None:
                channel = open_channel(address, getattr(self.pd, "tls", None))  # test doubles have none
                entry = (channel, tikvpb_pb2_grpc.TikvStub(channel))
                self._channels[address] = entry
            return entry[1]


def _scan_builder(cursor: bytes, end: bytes, page: int, key_only: bool) -> Callable:
    def build(ctx: kvrpcpb_pb2.Context, region: metapb_pb2.Region) -> kvrpcpb_pb2.RawScanRequest:
        lo, hi = _clip(cursor, end, region)
        return kvrpcpb_pb2.RawScanRequest(context=ctx, start_key=lo, end_key=hi, limit=page, key_only=key_only)
    return build


def _checksum_builder(cursor: bytes, end: bytes) -> Callable:
    def build(ctx: kvrpcpb_pb2.Context, region: metapb_pb2.Region) -> kvrpcpb_pb2.RawChecksumRequest:
        lo, hi = _clip(cursor, end, region)
        return kvrpcpb_pb2.RawChecksumRequest(context=ctx, algorithm=kvrpcpb_pb2.Crc64_Xor,
                                              ranges=[kvrpcpb_pb2.KeyRange(start_key=lo, end_key=hi)])
    return build
