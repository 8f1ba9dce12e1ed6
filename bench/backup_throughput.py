"""Backup throughput on the devcluster, against a baseline measured in the same process.

    python bench/backup_throughput.py --size 1GB [--stores 3 --regions 24 --value-size 1024]

Starts SeaweedFS, Redis, a devcluster (PD + N stores) and one br-agent per store, loads the
data, then measures
  1. baseline: a plain boto3 upload (s3transfer, one thread per store) of the same number of
     bytes as the backup's SST files, to the same S3 server;
  2. `br backup full` (checksum on) of the whole cluster;
and prints both rates and their ratio. Everything it started is stopped by PID at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3

from br_common import procs
from br_common.fleet import redis_client
from br_common.fleet.registry import Registry
from br_common.kvproto import brpb_pb2
from br_common.pd_client import PDClient
from br_common.tikv_client import RawKVClient
from br_devcluster import cluster
from br_devcluster.load import KeyGen, LoadSpec, parse_size, run_load
from br_devcluster.services import start_redis, start_seaweedfs

BUCKET = "bench"
MB = 1e6


def _client(endpoint: str):  # noqa: ANN202 - boto3 client
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _start_agents(state: cluster.ClusterState, broker: str, work: Path) -> list[int]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    pids = []
    for n, entry in enumerate(state.by_role("store"), 1):
        args = [sys.executable, "-m", "br_agent.cli", "--store", entry.address, "--pd", state.pd_address,
                "--broker", broker, "--staging-dir", str(work / f"staging-{n}"), "--log-level", "warn"]
        pids.append(procs.spawn(args, work / f"agent-{n}.log", env=env).pid)
    registry = Registry(redis_client(broker))
    deadline = time.monotonic() + 60
    while len({a.store_id for a in registry.alive()}) < len(pids):
        if time.monotonic() > deadline:
            raise SystemExit("agents did not register; see " + str(work))
        time.sleep(0.2)
    time.sleep(1.5)  # Celery consumers come up just after the first heartbeat
    return pids


def _baseline(endpoint: str, total: int, streams: int, work: Path) -> float:
    """MB/s of boto3 uploading `total` incompressible bytes in `streams` parallel files."""
    per = max(1, total // streams)
    path = work / "baseline.bin"
    with open(path, "wb") as out:
        for _ in range(0, per, 1 << 24):
            out.write(os.urandom(min(1 << 24, per)))
    client = _client(endpoint)
    started = time.monotonic()
    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(lambda i: client.upload_file(str(path), BUCKET, f"baseline/{i}.bin"), range(streams)))
    elapsed = time.monotonic() - started
    path.unlink()
    return per * streams / MB / elapsed


def _backup(state: cluster.ClusterState, broker: str, endpoint: str, work: Path) -> tuple[float, brpb_pb2.BackupMeta]:
    import subprocess  # noqa: PLC0415

    url = f"s3://{BUCKET}/backup-{int(time.time())}?endpoint={endpoint}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "br_coordinator.cli", "backup", "full", "--pd", state.pd_address,
                           "-s", url, "--broker", broker, "--log-file", str(work / "br.log")],
                          env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"br backup failed: {done.stderr}")
    print(done.stdout.rstrip())
    prefix = url.split("?")[0].removeprefix(f"s3://{BUCKET}/")
    meta = brpb_pb2.BackupMeta()
    meta.ParseFromString(_client(endpoint).get_object(Bucket=BUCKET, Key=f"{prefix}/backupmeta")["Body"].read())
    return elapsed, meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256MB", help="data set size (keys + values), e.g. 1GB")
    parser.add_argument("--stores", type=int, default=3)
    parser.add_argument("--regions", type=int, default=24)
    parser.add_argument("--value-size", type=int, default=1024)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="br-bench-"))
    services, data_dir, agents = [], work / "cluster", []
    try:
        services.append(start_seaweedfs(work / "seaweedfs", bucket=BUCKET))
        services.append(start_redis(work / "redis"))
        endpoint, broker = services[0].url, services[1].url
        state = cluster.up(data_dir, cluster.ClusterConfig(stores=args.stores, regions=args.regions)).state
        gen = KeyGen(LoadSpec.from_size(parse_size(args.size), args.value_size, seed=7))
        with PDClient(state.pd_address) as pd, RawKVClient(pd) as kv:
            started = time.monotonic()
            run_load(gen, kv.batch_put, 4 << 20, writers=4)
            print(f"loaded {gen.spec.total_bytes / MB:.0f} MB ({gen.spec.keys} keys) in "
                  f"{time.monotonic() - started:.1f}s")
        agents = _start_agents(state, broker, work)
        elapsed, meta = _backup(state, broker, endpoint, work)
        data = sum(f.total_bytes for f in meta.files)
        backup_rate = meta.backup_size / MB / elapsed
        baseline = _baseline(endpoint, meta.backup_size, args.stores, work)
        print(f"backup: {data / MB:.0f} MB of data -> {meta.backup_size / MB:.0f} MB of SST in {elapsed:.1f}s "
              f"(whole command, checksum included): {data / MB / elapsed:.1f} MB/s of data, "
              f"{backup_rate:.1f} MB/s to S3")
        print(f"baseline: boto3 upload of {meta.backup_size / MB:.0f} MB in {args.stores} streams: {baseline:.1f} MB/s")
        print(f"ratio backup/baseline (bytes to S3): {backup_rate / baseline:.2f}")
        return 0
    finally:
        for pid in agents:
            procs.stop_pid(pid)
        if (data_dir / cluster.STATE_FILE).exists():
            cluster.down(data_dir)
        for handle in reversed(services):
            handle.stop()
        shutil.rmtree(work, ignore_errors=True)  # the cluster and S3 data: as big as the data set


if __name__ == "__main__":
    sys.exit(main())
