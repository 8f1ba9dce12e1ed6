"""Region checks of every request carrying a kvrpcpb.Context, against PD (never a cached view)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from br_common.kvproto import errorpb_pb2, kvrpcpb_pb2, metapb_pb2
from br_common.pd_client import PDClient, PDError, RegionInfo
from br_common.redaction import show_key
from br_devcluster.store.errors import RegionError


def key_in_region(key: bytes, region: metapb_pb2.Region) -> bool:
    return region.start_key <= key and (not region.end_key or key < region.end_key)


def range_in_region(start: bytes, end: bytes, region: metapb_pb2.Region) -> bool:
    """[start, end) inside the region; end b"" means unbounded."""
    if start < region.start_key:
        return False
    if not region.end_key:
        return True
    return bool(end) and end <= region.end_key


def clamp_end(end: bytes, region: metapb_pb2.Region) -> bytes:
    """A scan's end: b"" (open) means up to the region's end."""
    return end or region.end_key


def min_end(end: bytes, other: bytes) -> bytes:
    """The lower of two exclusive ends, b"" meaning unbounded."""
    if not end or not other:
        return end or other
    return min(end, other)


def seekable(key: bytes, region: metapb_pb2.Region) -> bool:
    """Where TiKV's region snapshot lets an iterator seek: inside the region or at its end
    (check_key_in_region_inclusive)."""
    return region.start_key <= key and (not region.end_key or key <= region.end_key)


def clamp_scan(start: bytes, end: bytes, reverse: bool, region: metapb_pb2.Region) -> tuple[bytes, bytes]:
    """[lower, upper) of a raw scan as TiKV bounds it by the region snapshot: forward scans cover
    [start, end), reverse ones [end, start); the far end is clamped to the region, the key the
    scan seeks to (start) must be seekable or the answer is KeyNotInRegion. A reverse scan's empty
    start means the region's end. An inverted range gives lower >= upper: nothing to scan."""
    if reverse and not start:
        return max(end, region.start_key), region.end_key
    if not seekable(start, region):
        raise key_not_in_region(start, region)
    if reverse:
        return max(end, region.start_key), start
    return start, min_end(end, region.end_key)


def is_empty_range(lower: bytes, upper: bytes) -> bool:
    return bool(upper) and upper <= lower


class RegionChecker:
    def __init__(self, pd: PDClient, store_id: Callable[[], int]) -> None:
        self._pd = pd
        self._store_id = store_id

    def leader_region(self, ctx: kvrpcpb_pb2.Context) -> RegionInfo:
        """The region as PD has it now, if this store leads it and the epoch matches. As TiKV:
        a store without a peer of the region does not know it (RegionNotFound), and a normal
        read or write compares only the epoch's version (a conf change alone does not fail it)."""
        info = self._pd.region_by_id(ctx.region_id) if ctx.region_id else None
        if info is None or not has_peer(info.region, self._store_id()):
            raise region_not_found(ctx.region_id)
        self.require_leader(info)
        if ctx.region_epoch.version != info.region.region_epoch.version:
            raise epoch_not_match(ctx.region_epoch, info.region, self._right_sibling(info.region))
        return info

    def _right_sibling(self, region: metapb_pb2.Region) -> list[metapb_pb2.Region]:
        """The region after this one: where a split of it put the new half (the devcluster keeps
        the id on the left). TiKV adds such a sibling to EpochNotMatch, so that a client can
        update its cache without asking PD; it is only a hint, so PD failing leaves it out."""
        if not region.end_key:
            return []
        try:
            sibling = self._pd.region(region.end_key)
        except PDError:
            return []
        return [sibling.region] if sibling is not None else []

    def require_leader(self, info: RegionInfo) -> None:
        if info.leader_store_id != self._store_id():
            raise RegionError(not_leader(info, self._store_id()))

    def check_keys(self, ctx: kvrpcpb_pb2.Context, keys: Iterable[bytes]) -> RegionInfo:
        info = self.leader_region(ctx)
        for key in keys:
            if not key_in_region(key, info.region):
                raise key_not_in_region(key, info.region)
        return info

    def check_ranges(self, ctx: kvrpcpb_pb2.Context, ranges: Iterable[tuple[bytes, bytes]]) -> RegionInfo:
        info = self.leader_region(ctx)
        for start, end in ranges:
            if not range_in_region(start, end, info.region):
                raise key_not_in_region(start if not key_in_region(start, info.region) else end, info.region)
        return info


def has_peer(region: metapb_pb2.Region, store_id: int) -> bool:
    return any(peer.store_id == store_id for peer in region.peers)


def region_not_found(region_id: int) -> RegionError:
    return RegionError(errorpb_pb2.Error(message=f"region {region_id} not found",
                                         region_not_found=errorpb_pb2.RegionNotFound(region_id=region_id)))


def epoch_not_match(seen: metapb_pb2.RegionEpoch, region: metapb_pb2.Region,
                    siblings: Sequence[metapb_pb2.Region] = ()) -> RegionError:
    """EpochNotMatch carrying the current region first, then any sibling worth caching."""
    now = region.region_epoch
    return RegionError(errorpb_pb2.Error(
        message=(f"epoch not match for region {region.id}: request has conf_ver={seen.conf_ver} "
                 f"version={seen.version}, current conf_ver={now.conf_ver} version={now.version}"),
        epoch_not_match=errorpb_pb2.EpochNotMatch(current_regions=[region, *siblings])))


def not_leader(info: RegionInfo, store_id: int) -> errorpb_pb2.Error:
    leader = info.leader if info.leader is not None else metapb_pb2.Peer()
    return errorpb_pb2.Error(
        message=f"store {store_id} is not the leader of region {info.id} (leader: store {info.leader_store_id})",
        not_leader=errorpb_pb2.NotLeader(region_id=info.id, leader=leader))


def key_not_in_region(key: bytes, region: metapb_pb2.Region) -> RegionError:
    return RegionError(errorpb_pb2.Error(
        message=f"key {show_key(key)} is not in region {region.id} [{show_key(region.start_key)}, {show_key(region.end_key)}) (hex)",
        key_not_in_region=errorpb_pb2.KeyNotInRegion(key=key, region_id=region.id, start_key=region.start_key,
                                                     end_key=region.end_key)))
