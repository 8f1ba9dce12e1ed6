"""Backup throughput on the devcluster, against a baseline measured in the same process.

    python bench/backup_throughput.py --size 1GB [--stores 3 --regions 24 --value-size 1024]

Starts SeaweedFS, Redis, a devcluster (PD + N stores) and one br-agent per store, loads the
data, then measures
  1. baseline: a plain boto3 upload (s3transfer, one thread per store) of the same number of
     bytes as the backup's SST files, to the same S3 server;
  2. `br backup full` (checksum on: every agent reads each file back and checks its pairs against
     the store's counts) of the whole cluster;
  3. the same backup with --checksum=false, to show what that check costs;
and prints the rates and their ratios. Everything it started is stopped by PID at the end.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_setup import BUCKET, MB, loaded_cluster, read_meta, run_br, s3_client

from br_common.kvproto import brpb_pb2
from br_devcluster import cluster


def _baseline(endpoint: str, total: int, streams: int, work: Path) -> float:
    """MB/s of boto3 uploading `total` incompressible bytes in `streams` parallel files."""
    per = max(1, total // streams)
    path = work / "baseline.bin"
    with open(path, "wb") as out:
        for _ in range(0, per, 1 << 24):
            out.write(os.urandom(min(1 << 24, per)))
    client = s3_client(endpoint)
    started = time.monotonic()
    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(lambda i: client.upload_file(str(path), BUCKET, f"baseline/{i}.bin"), range(streams)))
    elapsed = time.monotonic() - started
    path.unlink()
    return per * streams / MB / elapsed


def _backup(state: cluster.ClusterState, broker: str, endpoint: str, work: Path,
            *extra: str) -> tuple[float, brpb_pb2.BackupMeta]:
    prefix = f"backup-{time.monotonic_ns()}"
    elapsed, summary = run_br("backup", "full", "--pd", state.pd_address, "-s",
                              f"s3://{BUCKET}/{prefix}?endpoint={endpoint}", *extra, broker=broker,
                              log_file=work / "br.log")
    print(summary.rstrip())
    return elapsed, read_meta(endpoint, prefix)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256MB", help="data set size (keys + values), e.g. 1GB")
    parser.add_argument("--stores", type=int, default=3)
    parser.add_argument("--regions", type=int, default=24)
    parser.add_argument("--value-size", type=int, default=1024)
    args = parser.parse_args()
    with loaded_cluster("backup", args.stores, args.regions, args.size, args.value_size) as bench:
        elapsed, meta = _backup(bench.state, bench.broker, bench.endpoint, bench.work)
        data = sum(f.total_bytes for f in meta.files)
        backup_rate = meta.backup_size / MB / elapsed
        baseline = _baseline(bench.endpoint, meta.backup_size, args.stores, bench.work)
        print(f"backup: {data / MB:.0f} MB of data -> {meta.backup_size / MB:.0f} MB of SST in {elapsed:.1f}s "
              f"(whole command, checksum included): {data / MB / elapsed:.1f} MB/s of data, "
              f"{backup_rate:.1f} MB/s to S3")
        print(f"baseline: boto3 upload of {meta.backup_size / MB:.0f} MB in {args.stores} streams: {baseline:.1f} MB/s")
        print(f"ratio backup/baseline (bytes to S3): {backup_rate / baseline:.2f}")
        unchecked, _ = _backup(bench.state, bench.broker, bench.endpoint, bench.work, "--checksum=false")
        print(f"--checksum=false: {unchecked:.1f}s; the agents' file check costs {elapsed / unchecked:.2f}x "
              f"the time of the same backup without it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
