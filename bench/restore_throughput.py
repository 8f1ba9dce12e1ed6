"""Restore throughput on the devcluster, against a baseline measured in the same process.

    python bench/restore_throughput.py --size 1GB [--stores 3 --target-stores 3 --replicas 1]

Starts SeaweedFS, Redis, a source devcluster with one br-agent per store, loads the data and
takes `br backup full`; then starts an empty target devcluster with its own agents (its own
Redis database) and measures
  1. baseline: a plain boto3 download (s3transfer) of the backup's SST files, one thread per
     target store, from the same S3 server;
  2. `br restore full` (checksum on) into the target;
and prints both rates, their ratio and where the restore's time went (from its log). Everything
it started is stopped by PID and its work dir removed at the end.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from bench_setup import BUCKET, MB, load, read_meta, run_br, s3_client, start_agents

from br_common import procs
from br_common.kvproto import brpb_pb2
from br_devcluster import cluster
from br_devcluster.services import start_redis, start_seaweedfs

# log lines that end a phase of the restore (br_coordinator.restore logs them at info)
PHASES = [("read + check backupmeta, objects", "restore job "), ("split + scatter", "split at "),
          ("download + ingest", "checksum verified"), ]
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def _baseline(endpoint: str, prefix: str, meta: brpb_pb2.BackupMeta, streams: int, work: Path) -> float:
    """MB/s of boto3 downloading the backup's files with `streams` threads."""
    client = s3_client(endpoint)
    target = work / "baseline"
    target.mkdir(exist_ok=True)
    started = time.monotonic()
    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(lambda f: client.download_file(BUCKET, f"{prefix}/{f.name}", str(target / f"{f.sha256.hex()}")),
                      meta.files))
    elapsed = time.monotonic() - started
    for path in target.iterdir():
        path.unlink()
    return meta.backup_size / MB / elapsed


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(_cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}


def _phases(log_file: Path, started: float, total: float) -> list[tuple[str, float]]:
    """Seconds spent per phase, from the timestamps of the restore's log lines."""
    stamps: dict[str, float] = {}
    for line in log_file.read_text(errors="replace").splitlines():
        match = _STAMP.match(line)
        for name, marker in PHASES:
            if match and marker in line and name not in stamps:
                stamps[name] = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    out, last = [], started
    for name, _ in PHASES:
        if name in stamps:
            out.append((name, stamps[name] - last))
            last = stamps[name]
    out.append(("verify + summary + process start/exit", started + total - last))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256MB", help="data set size (keys + values), e.g. 1GB")
    parser.add_argument("--stores", type=int, default=3, help="source stores")
    parser.add_argument("--regions", type=int, default=24, help="source regions")
    parser.add_argument("--target-stores", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1, help="target replicas")
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=4, help="br restore --concurrency")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="br-bench-restore-"))
    services, source_dir, target_dir, agents = [], work / "source", work / "target", []
    try:
        services.append(start_seaweedfs(work / "seaweedfs", bucket=BUCKET))
        services.append(start_redis(work / "redis"))
        endpoint, base = services[0].url, services[1].url.rsplit("/", 1)[0]
        source = cluster.up(source_dir, cluster.ClusterConfig(stores=args.stores, regions=args.regions)).state
        load(source, args.size, args.value_size)
        agents += start_agents(source, f"{base}/0", work, "source")
        prefix = f"restore-bench-{int(time.time())}"
        url = f"s3://{BUCKET}/{prefix}?endpoint={endpoint}"
        backup_s, _ = run_br("backup", "full", "--pd", source.pd_address, "-s", url, broker=f"{base}/0",
                          log_file=work / "backup.log")
        meta = read_meta(endpoint, prefix)
        print(f"backup: {meta.backup_size / MB:.0f} MB of SST in {len(meta.files)} files, {backup_s:.1f}s")
        for pid in agents:  # the source's agents would only compete for the CPU
            procs.stop_pid(pid)
        agents.clear()
        target = cluster.up(target_dir, cluster.ClusterConfig(stores=args.target_stores, replicas=args.replicas,
                                                              regions=2)).state
        agents += start_agents(target, f"{base}/1", work, "target")
        log_file = work / "restore.log"
        groups = {"stores": [e.pid for e in target.by_role("store")], "agents": list(agents),
                  "pd": [e.pid for e in target.by_role("pd")], "s3 server": [services[0].pid]}
        cpu_before = _cpu(groups)
        wall = time.time()
        restore_s, summary = run_br("restore", "full", "--pd", target.pd_address, "-s", url, "--concurrency",
                                 str(args.concurrency), broker=f"{base}/1", log_file=log_file)
        cpu_after = _cpu(groups)
        print(summary.rstrip())
        baseline = _baseline(endpoint, prefix, meta, args.target_stores, work)
        data = sum(f.total_bytes for f in meta.files)
        rate = meta.backup_size / MB / restore_s
        print(f"restore: {meta.backup_size / MB:.0f} MB of SST ({data / MB:.0f} MB of data) into "
              f"{args.target_stores} stores x{args.replicas} in {restore_s:.1f}s (whole command, checksum "
              f"included): {rate:.1f} MB/s from S3, {data / MB / restore_s:.1f} MB/s of data")
        for name, seconds in _phases(log_file, wall, restore_s):
            print(f"  {name}: {seconds:.1f}s")
        print("  CPU seconds during the restore (2 cores = 2 s per second): " + ", ".join(
            f"{name} {cpu_after[name] - cpu_before[name]:.1f}" for name in groups))
        print(f"baseline: boto3 download of {meta.backup_size / MB:.0f} MB in {args.target_stores} streams: "
              f"{baseline:.1f} MB/s")
        print(f"ratio restore/baseline (bytes from S3): {rate / baseline:.2f}")
        return 0
    finally:
        for pid in agents:
            procs.stop_pid(pid)
        for data_dir in (target_dir, source_dir):
            if (data_dir / cluster.STATE_FILE).exists():
                cluster.down(data_dir)
        for handle in reversed(services):
            handle.stop()
        shutil.rmtree(work, ignore_errors=True)  # cluster and S3 data: gigabytes


if __name__ == "__main__":
    sys.exit(main())
