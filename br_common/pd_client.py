"""A client of PD's gRPC API (pdpb.PD); works against a real PD and against br_devcluster's."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from br_common.addresses import parse_pd_addresses
from br_common.grpc_tls import TLSConfig, open_channel
from br_common.kvproto import metapb_pb2, pdpb_pb2, pdpb_pb2_grpc
from br_common.tso import compose

SCAN_PAGE = 128


class PDError(RuntimeError):
    """PD answered with an error in its response header, or could not be reached."""


@dataclass(frozen=True)
class RegionInfo:
    region: metapb_pb2.Region
    leader: metapb_pb2.Peer | None

    @property
    def id(self) -> int:
        return self.region.id

    @property
    def leader_store_id(self) -> int:
        return self.leader.store_id if self.leader is not None else 0


RETRY_FIRST_PAUSE = 0.2  # seconds; doubles up to RETRY_MAX_PAUSE while PD is unavailable
RETRY_MAX_PAUSE = 2.0


class PDClient:
    """Thin, thread-safe wrapper; cluster_id is discovered with GetMembers as PD clients do."""

    def __init__(self, address: str, timeout: float = 10.0, caller_id: str = "br-fleet",
                 tls: TLSConfig | None = None, retry_for: float = 0.0) -> None:
        """`address`: one PD or several, comma-separated (`--pd a:2379,b:2379`): the first that
        answers tells the leader, and the client talks to the leader as PD's own clients do.
        `retry_for`: seconds a call retries while PD is UNAVAILABLE (restarting: no request was
        delivered, so any call may be retried), with backoff past gRPC's reconnect; 0: fail at once."""
        self.retry_for = retry_for
        try:
            candidates = parse_pd_addresses(address)
        except ValueError as exc:
            raise PDError(str(exc)) from None
        self.timeout = timeout
        self.tls = tls
        self._caller_id = caller_id
        self._lock = threading.Lock()
        self.cluster_id = 0
        problems = []
        for candidate in candidates:
            try:
                self._connect(candidate)
                break
            except PDError as exc:
                problems.append(str(exc))
        else:
            raise PDError("; ".join(problems) if len(problems) > 1 else problems[0])
        self._follow_leader()

    def _connect(self, address: str) -> None:
        """Use `address` if it answers GetMembers; the client's state changes only then."""
        channel = open_channel(address, self.tls)
        stub = pdpb_pb2_grpc.PDStub(channel)
        try:
            members = stub.GetMembers(pdpb_pb2.GetMembersRequest(header=self._header()), timeout=self.timeout)
        except grpc.RpcError as exc:
            channel.close()
            tls = self.tls is not None and self.tls.enabled
            hint = "" if tls else "; if the cluster uses TLS, pass --ca/--cert/--key"
            raise PDError(f"cannot reach PD at {address} ({'TLS' if tls else 'plain gRPC'}): "
                          f"{_rpc_reason(exc)}{hint}") from None
        previous = getattr(self, "_channel", None)
        self.address, self._channel, self._stub = address, channel, stub
        self.cluster_id, self.members_seen = members.header.cluster_id, members
        if previous is not None:
            previous.close()

    def _follow_leader(self) -> None:
        """Move to the leader's client URL when the PD that answered is a follower (a real PD
        follower refuses most requests); stay where we are when the leader is unreachable."""
        leader = self.members_seen.leader if self.members_seen.HasField("leader") else None
        urls = [u.removeprefix("http://").removeprefix("https://").rstrip("/") for u in (leader.client_urls if leader else [])]
        if self.address in urls:
            return
        for url in urls:
            try:
                self._connect(url)
                return
            except PDError:
                continue

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "PDClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _header(self) -> pdpb_pb2.RequestHeader:
        return pdpb_pb2.RequestHeader(cluster_id=self.cluster_id, caller_id=self._caller_id)

    def _call(self, method: str, request, timeout: float | None = None):  # noqa: ANN001 - any pdpb request
        deadline = time.monotonic() + self.retry_for
        pause = RETRY_FIRST_PAUSE
        while True:
            try:
                response = getattr(self._stub, method)(request, timeout=timeout or self.timeout)
                break
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() + pause > deadline:
                    raise PDError(f"PD {method} failed: {_rpc_reason(exc)}") from None
                time.sleep(pause)  # PD restarting: the channel reconnects by itself (capped backoff)
                pause = min(pause * 2, RETRY_MAX_PAUSE)
        if response.header.HasField("error") and response.header.error.type != pdpb_pb2.OK:
            raise PDError(f"PD {method}: {response.header.error.message}")
        return response

    # --- members and stores -------------------------------------------------------------
    def members(self) -> pdpb_pb2.GetMembersResponse:
        return self._call("GetMembers", pdpb_pb2.GetMembersRequest(header=self._header()))

    def stores(self) -> list[metapb_pb2.Store]:
        request = pdpb_pb2.GetAllStoresRequest(header=self._header(), exclude_tombstone_stores=True)
        return list(self._call("GetAllStores", request).stores)

    def store(self, store_id: int) -> metapb_pb2.Store:
        return self._call("GetStore", pdpb_pb2.GetStoreRequest(header=self._header(), store_id=store_id)).store

    # --- regions ------------------------------------------------------------------------
    def region(self, key: bytes) -> RegionInfo | None:
        response = self._call("GetRegion", pdpb_pb2.GetRegionRequest(header=self._header(), region_key=key))
        return _region_info(response)

    def region_by_id(self, region_id: int) -> RegionInfo | None:
        request = pdpb_pb2.GetRegionByIDRequest(header=self._header(), region_id=region_id)
        return _region_info(self._call("GetRegionByID", request))

    def scan_regions(self, start_key: bytes = b"", end_key: bytes = b"", page: int = SCAN_PAGE) -> Iterator[RegionInfo]:
        """Every region overlapping [start_key, end_key) in key order (end b"" = unbounded), paged."""
        cursor = start_key
        while True:
            request = pdpb_pb2.ScanRegionsRequest(header=self._header(), start_key=cursor, end_key=end_key, limit=page)
            response = self._call("ScanRegions", request)
            infos = [RegionInfo(r.region, r.leader if r.HasField("leader") else None) for r in response.regions]
            if not infos:  # older PDs fill only the parallel arrays
                infos = [RegionInfo(m, l) for m, l in zip(response.region_metas, response.leaders)]
            yield from infos
            if not infos:
                return
            cursor = infos[-1].region.end_key
            if cursor == b"" or (end_key and cursor >= end_key):
                return

    def split_regions(self, split_keys: list[bytes]) -> list[int]:
        if not split_keys:  # PD refuses an empty list; nothing to split is not an error
            return []
        request = pdpb_pb2.SplitRegionsRequest(header=self._header(), split_keys=split_keys, retry_limit=3)
        return list(self._call("SplitRegions", request).regions_id)

    def scatter_regions(self, region_ids: list[int], group: str = "", timeout: float = 600.0) -> list[int]:
        """Scatter; returns the ids that failed. The devcluster PD answers once the moves are done,
        which for many regions takes longer than an ordinary call, hence the long timeout."""
        request = pdpb_pb2.ScatterRegionRequest(header=self._header(), regions_id=region_ids, group=group,
                                                retry_limit=3)
        return list(self._call("ScatterRegion", request, timeout=timeout).failed_regions_id)

    # --- timestamps and GC --------------------------------------------------------------
    def tso(self) -> int:
        request = pdpb_pb2.TsoRequest(header=self._header(), count=1)
        with self._lock:
            try:
                response = next(self._stub.Tso(iter([request]), timeout=self.timeout))
            except grpc.RpcError as exc:
                raise PDError(f"PD Tso failed: {_rpc_reason(exc)}") from None
        if response.header.HasField("error") and response.header.error.type != pdpb_pb2.OK:
            raise PDError(f"PD Tso: {response.header.error.message}")
        return compose(response.timestamp.physical, response.timestamp.logical)

    def gc_safe_point(self) -> int:
        return self._call("GetGCSafePoint", pdpb_pb2.GetGCSafePointRequest(header=self._header())).safe_point

    def update_service_gc_safe_point(self, service_id: str, ttl_seconds: int, safe_point: int) -> int:
        """Register, refresh (same id) or remove (ttl <= 0) a service safe point; returns the minimum."""
        request = pdpb_pb2.UpdateServiceGCSafePointRequest(header=self._header(), service_id=service_id.encode(),
                                                           TTL=ttl_seconds, safe_point=safe_point)
        return self._call("UpdateServiceGCSafePoint", request).min_safe_point


def _region_info(response: pdpb_pb2.GetRegionResponse) -> RegionInfo | None:
    if not response.HasField("region") or response.region.id == 0:
        return None
    return RegionInfo(response.region, response.leader if response.HasField("leader") else None)


def _rpc_reason(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return f"{code.name if code else 'ERROR'}: {details}"
