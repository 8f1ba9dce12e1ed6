"""Transactional backup and restore against raw ones of the same size, in the same process.

    python bench/txn_vs_raw.py --size 1GB [--stores 3 --regions 24 --target-stores 3 --value-size 1024]

Starts SeaweedFS and Redis, then for each kind (raw, then txn) a source devcluster with one
br-agent per store, loads --size of generated data (raw: RawBatchPut; txn: Percolator 2PC,
`br-devcluster load --txn`'s writer), times the backup (`br backup raw` / `br backup full`), stops
the source, starts an empty target devcluster with its own agents and times the restore (`br
restore raw` / `br restore full`). Both commands run with their checksum on. Prints MB/s of data
for each and the txn/raw time ratio of backup and restore (1.0: a txn backup costs what a raw
one does). Everything started is stopped by PID and the work dir removed at the end.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_setup import BUCKET, MB, read_meta, run_br, start_agents

from br_common import procs
from br_common.pd_client import PDClient
from br_common.tikv_client import RawKVClient
from br_devcluster import cluster
from br_devcluster.load import KeyGen, LoadSpec, parse_size, run_load
from br_devcluster.services import start_redis, start_seaweedfs
from br_devcluster.txn_kv import TxnKV

BATCH_BYTES = 4 << 20  # br-devcluster load's default --batch-bytes (one txn per batch with --txn)


@dataclass
class RoundTrip:
    kind: str
    data_mb: float
    load_s: float
    backup_s: float
    restore_s: float


def _load(state: cluster.ClusterState, gen: KeyGen, txn: bool) -> float:
    with PDClient(state.pd_address) as pd, (TxnKV(pd) if txn else RawKVClient(pd)) as client:
        put = client.commit if txn else lambda pairs: client.batch_put(pairs, BATCH_BYTES)
        started = time.monotonic()
        run_load(gen, put, BATCH_BYTES, writers=4)
        return time.monotonic() - started


def _round_trip(kind: str, args: argparse.Namespace, work: Path, broker: str, endpoint: str) -> RoundTrip:
    """Load, back up, and restore into a fresh cluster; every process it starts is stopped."""
    gen = KeyGen(LoadSpec.from_size(parse_size(args.size), args.value_size, seed=7))
    url = f"s3://{BUCKET}/{kind}-{int(time.time())}?endpoint={endpoint}"
    source_dir, target_dir, agents = work / f"{kind}-source", work / f"{kind}-target", []
    command = "raw" if kind == "raw" else "full"
    db = 0 if kind == "raw" else 2  # Redis databases: source db, target db + 1 (no stale registrations)
    try:
        source = cluster.up(source_dir, cluster.ClusterConfig(stores=args.stores, regions=args.regions)).state
        load_s = _load(source, gen, txn=kind == "txn")
        print(f"[{kind}] loaded {gen.spec.total_bytes / MB:.0f} MB ({gen.spec.keys} keys) in {load_s:.1f}s")
        agents = start_agents(source, f"{broker}/{db}", work, f"{kind}-source")
        backup_s, _ = run_br("backup", command, "--pd", source.pd_address, "-s", url, broker=f"{broker}/{db}",
                             log_file=work / f"{kind}-backup.log")
        meta = read_meta(endpoint, url.split("/", 3)[3].split("?")[0])
        print(f"[{kind}] br backup {command}: {backup_s:.1f}s, {meta.backup_size / MB:.0f} MB of SST "
              f"in {len(meta.files)} files")
        _stop(agents, source_dir)
        agents = []
        target = cluster.up(target_dir, cluster.ClusterConfig(stores=args.target_stores, regions=2)).state
        agents = start_agents(target, f"{broker}/{db + 1}", work, f"{kind}-target")
        restore_s, _ = run_br("restore", command, "--pd", target.pd_address, "-s", url,
                              broker=f"{broker}/{db + 1}",
                              log_file=work / f"{kind}-restore.log")
        print(f"[{kind}] br restore {command}: {restore_s:.1f}s")
    finally:
        _stop(agents, source_dir, target_dir)
    return RoundTrip(kind, gen.spec.total_bytes / MB, load_s, backup_s, restore_s)


def _stop(agents: list[int], *data_dirs: Path) -> None:
    for pid in agents:
        procs.stop_pid(pid)
    for data_dir in data_dirs:
        if (data_dir / cluster.STATE_FILE).exists():
            cluster.down(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def _report(raw: RoundTrip, txn: RoundTrip) -> None:
    print(f"\n{'':8}{'load MB/s':>12}{'backup MB/s':>14}{'restore MB/s':>15}")
    for trip in (raw, txn):
        print(f"{trip.kind:8}{trip.data_mb / trip.load_s:12.1f}{trip.data_mb / trip.backup_s:14.1f}"
              f"{trip.data_mb / trip.restore_s:15.1f}")
    print(f"ratio txn/raw (time, same data size): load {txn.load_s / raw.load_s:.2f}, "
          f"backup {txn.backup_s / raw.backup_s:.2f}, restore {txn.restore_s / raw.restore_s:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GB", help="data set size per kind (keys + values), e.g. 256MB")
    parser.add_argument("--stores", type=int, default=3, help="source stores")
    parser.add_argument("--regions", type=int, default=24, help="source regions")
    parser.add_argument("--target-stores", type=int, default=3)
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--only", choices=["raw", "txn"], help="run one kind only (no ratio)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="br-bench-txn-vs-raw-"))
    services = []
    try:
        services.append(start_seaweedfs(work / "seaweedfs", bucket=BUCKET))
        services.append(start_redis(work / "redis"))
        endpoint, broker = services[0].url, services[1].url.rsplit("/", 1)[0]
        trips = {kind: _round_trip(kind, args, work, broker, endpoint)
                 for kind in ("raw", "txn") if args.only in (None, kind)}
        if len(trips) == 2:
            _report(trips["raw"], trips["txn"])
    finally:
        for handle in reversed(services):
            handle.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
