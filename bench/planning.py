"""Planning time: PD's region list -> per-store backup tasks, for 100k and 1M regions.

    python bench/planning.py [--regions 100000,1000000 --stores 5]

A PD stub answers ScanRegions from pre-serialised pages of SCAN_PAGE regions (what a real PD's
answers cost br is parsing them; PD's own time and the network are not measured here), and
br_coordinator.backup_plan.plan_range groups the regions into per-leader tasks, for a raw and
for a transactional backup (whose region bounds are memcomparable-encoded keys that br maps
back to raw user keys). Leaders come in runs of 1 to 16 regions per store, as after PD's
balancing. Prints the time per kind and per size, and the regions planned per second.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator

from br_common.backupmeta.kind import BackupKind
from br_common.fleet.messages import KeyRange
from br_common.kvproto import metapb_pb2, pdpb_pb2
from br_common.pd_client import SCAN_PAGE, RegionInfo
from br_common.txn_codec import encode_bytes
from br_coordinator.backup_plan import plan_range


class StubPD:
    """scan_regions as PDClient's, over serialised ScanRegionsResponse pages."""

    def __init__(self, bounds: list[bytes], stores: int, seed: int = 1) -> None:
        rng = random.Random(seed)
        self._pages: list[bytes] = []
        self._firsts: list[bytes] = []
        leader, run_left = 1, 0
        response = pdpb_pb2.ScanRegionsResponse()
        for i in range(len(bounds) - 1):
            if run_left == 0:
                leader, run_left = rng.randint(1, stores), rng.randint(1, 16)
            run_left -= 1
            region = metapb_pb2.Region(id=i + 1, start_key=bounds[i], end_key=bounds[i + 1])
            region.peers.add(id=10 * (i + 1) + leader, store_id=leader)
            item = response.regions.add(region=region)
            item.leader.CopyFrom(region.peers[0])
            if len(response.regions) == SCAN_PAGE:
                self._close_page(response)
                response = pdpb_pb2.ScanRegionsResponse()
        if response.regions:
            self._close_page(response)

    def _close_page(self, response: pdpb_pb2.ScanRegionsResponse) -> None:
        self._firsts.append(response.regions[0].region.start_key)
        self._pages.append(response.SerializeToString())

    def scan_regions(self, start_key: bytes = b"", end_key: bytes = b"", page: int = SCAN_PAGE) -> Iterator[RegionInfo]:
        for data in self._pages:  # the whole key space is asked: every page, in order
            response = pdpb_pb2.ScanRegionsResponse.FromString(data)
            yield from (RegionInfo(r.region, r.leader if r.HasField("leader") else None) for r in response.regions)


def region_bounds(count: int, txn: bool) -> list[bytes]:
    """count regions tiling the key space: b"", count-1 split keys, b"" (txn: encoded keys)."""
    keys = [b"t%08d_r" % i for i in range(1, count)]
    return [b"", *(encode_bytes(k) if txn else k for k in keys), b""]


def measure(count: int, stores: int, kind: BackupKind) -> tuple[float, int]:
    pd = StubPD(region_bounds(count, kind == BackupKind.TXN), stores)
    started = time.perf_counter()
    tasks = plan_range(pd, KeyRange(), kind)  # type: ignore[arg-type] - the stub has what plan_range uses
    return time.perf_counter() - started, len(tasks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", default="100000,1000000", help="region counts, comma-separated")
    parser.add_argument("--stores", type=int, default=5)
    args = parser.parse_args()
    for count in (int(c) for c in args.regions.split(",")):
        for kind in (BackupKind.RAW, BackupKind.TXN):
            seconds, tasks = measure(count, args.stores, kind)
            print(f"plan {count:>9,} regions ({kind.value:>3}): {seconds:6.2f} s, {count / seconds:>10,.0f} regions/s, "
                  f"{tasks:,} tasks" + ("  (target: under 10 s)" if count >= 1_000_000 else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
