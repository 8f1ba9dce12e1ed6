"""Raw reads naming a timestamp, on a devcluster only.

kvproto's raw requests carry no ts and TiKV's RawKV reads the latest data. The devcluster's raw
KV is API V1 as TiKV's (unversioned): its stores validate the `x-br-read-ts` gRPC metadata and
then read the current data, so a ts given here no longer selects a version. It stays for the
callers that name one (`br-devcluster checksum --ts`, the demo); versioned reads at a ts are
the transactional API's (KvGet/KvScan/Coprocessor carry their own version). A real TiKV ignores
the header, so product code never sends it.

    kv = SnapshotKV(pd)
    kv.checksum(ts=backup_ts); kv.scan(b"a", b"b", ts=ts); kv.get(b"k", ts=ts)
"""
from __future__ import annotations

import copy
from collections.abc import Iterator

from br_common.checksum import Checksum
from br_common.tikv_client import SCAN_PAGE, Pair, RawKVClient

READ_TS_METADATA = "x-br-read-ts"


class SnapshotKV(RawKVClient):
    """RawKVClient whose reads may name a ts (None: the latest, as RawKVClient)."""

    def at(self, ts: int | None) -> RawKVClient:
        """A view sharing this client's channels and region cache that reads at ts."""
        if ts is None:
            return self
        view = copy.copy(self)
        view.read_metadata = ((READ_TS_METADATA, str(ts)),)
        return view

    def get(self, key: bytes, ts: int | None = None) -> bytes | None:
        return RawKVClient.get(self.at(ts), key)

    def scan(self, start: bytes = b"", end: bytes = b"", limit: int = SCAN_PAGE, ts: int | None = None,
             key_only: bool = False) -> list[Pair]:
        return RawKVClient.scan(self.at(ts), start, end, limit, key_only=key_only)

    def iter_scan(self, start: bytes = b"", end: bytes = b"", ts: int | None = None, key_only: bool = False,
                  page: int = SCAN_PAGE) -> Iterator[Pair]:
        return RawKVClient.iter_scan(self.at(ts), start, end, key_only=key_only, page=page)

    def checksum(self, start: bytes = b"", end: bytes = b"", ts: int | None = None, workers: int = 4) -> Checksum:
        return RawKVClient.checksum(self.at(ts), start, end, workers=workers)
