"""TiKV's checks of a raw KV request before any data is read or written: the API version of the
request's Context, the column family, TTLs.

A store of the devcluster runs API V1, as a TiKV with the default `storage.api-version`. The
errors are TiKV's storage errors (src/storage/errors.rs), answered in the response rather than as a
gRPC status, so that a client reads them where it would read TiKV's.
"""
from __future__ import annotations

from collections.abc import Iterable

from br_common.kvproto import kvrpcpb_pb2
from br_devcluster.store.errors import StorageError

STORAGE_API_VERSION = kvrpcpb_pb2.V1
# how TiKV's Rust code prints kvrpcpb::ApiVersion (its Debug form)
_API_VERSION_NAMES = {kvrpcpb_pb2.V1: "V1", kvrpcpb_pb2.V1TTL: "V1ttl", kvrpcpb_pb2.V2: "V2"}
RAW_CFS = ("", "default")  # raw data lives in the default CF ("" means default, as in TiKV)
# CFs TiKV V1 also accepts for raw KV; the devcluster keeps raw data in default only
UNSUPPORTED_DATA_CFS = ("lock", "write")


def check_api_version(ctx: kvrpcpb_pb2.Context, command: str) -> None:
    """A V1 store serves V1 requests only (TiKV's check_api_version); `command` is TiKV's
    CommandKind name (raw_get, raw_scan...), which its message carries."""
    requested = ctx.api_version
    if requested == STORAGE_API_VERSION:
        return
    storage, request = _api_version_name(STORAGE_API_VERSION), _api_version_name(requested)
    raise StorageError(
        f"Api version in request does not match with TiKV storage, cmd: {command}, storage: {storage}, "
        f"request: {request}",
        f"Error(ApiVersionNotMatched {{ cmd: {command}, storage_api_version: {storage}, "
        f"req_api_version: {request} }})")


def check_cf(cf: str) -> None:
    """TiKV's rawkv_cf: "" and default; any other name is an invalid CF. lock and write, which
    TiKV V1 would accept, are refused in the same place with a message saying why."""
    if cf in RAW_CFS:
        return
    if cf in UNSUPPORTED_DATA_CFS:
        message = f"raw KV in cf {cf} is not supported by the devcluster (only default)"
        raise StorageError(message, f"Error(Other({rust_debug(message)}))")
    raise StorageError(f"invalid cf name: {cf}", f"Error(InvalidCf({rust_debug(cf)}))")


def check_no_ttl(ttls: Iterable[int]) -> None:
    """API V1 stores no TTL: a non-zero one is refused (TiKV's TtlNotEnabled)."""
    if any(ttls):
        raise StorageError("ttl is not enabled, but get put request with ttl", "Error(TtlNotEnabled)")


def check_delete_range(start: bytes, end: bytes) -> None:
    """TiKV refuses a delete range whose start is not below its end (b"" end: unbounded)."""
    if end and start >= end:
        message = f"invalid delete range command, start_key: {start!r}, end_key: {end!r}"
        raise StorageError(message, f"Error(Other({rust_debug(message)}))")


def batch_scan_ranges(ranges: Iterable[kvrpcpb_pb2.KeyRange], reverse: bool) -> list[tuple[bytes, bytes]]:
    """(start, end) of each range of a RawBatchScan: an empty end is the next range's start (the
    last range keeps it empty); a range whose end is on the wrong side of its start (at or above
    it in a forward scan, at or below it in a reverse one) makes the request invalid, as TiKV's
    check_key_ranges."""
    ranges = list(ranges)
    bounded = []
    for i, key_range in enumerate(ranges):
        end = key_range.end_key or (ranges[i + 1].start_key if i + 1 < len(ranges) else b"")
        if end and (key_range.start_key <= end if reverse else key_range.start_key >= end):
            raise StorageError("Invalid KeyRanges", f"Error(Other({rust_debug('Invalid KeyRanges')}))")
        bounded.append((key_range.start_key, end))
    return bounded


def _api_version_name(version: int) -> str:
    return _API_VERSION_NAMES.get(version, str(version))


def rust_debug(text: str) -> str:
    """A string as Rust's Debug prints it (double quotes, escaped), as in TiKV's KeyError.abort."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
