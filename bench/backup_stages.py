"""Backup, stage by stage, on one data set: which stage bounds `br backup`, and how much the
pipeline loses against it.

    python bench/backup_stages.py --size 256MB [--kind raw|txn --stores 3 --regions 24 --concurrency 4]

Starts SeaweedFS, Redis, a devcluster and one br-agent per store, loads `--size` of raw or
transactional data, then measures on the same data:
  (a) store:  every store's Backup RPC into a local directory alone (the regions each store
              leads, planned as br plans them, `--concurrency` requests in flight per store);
  (b) upload: the files (a) wrote, uploaded alone with boto3/s3transfer, `--concurrency`
              uploads in flight per store (what the agents run at most);
  and the same upload by rclone and by the AWS CLI (`aws s3 cp --recursive`) when installed
  (apt-get install rclone; pip install awscli), as an operator copying files by hand would get;
  (c) br:     `br backup raw|full` end to end (checksum on, as operators run it);
and prints each stage's time and MB/s (of SST bytes) and the ratio slower(a, b) / c: 1.0 means
br is as fast as its slowest stage alone, the target is >= 0.8.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from bench_setup import BUCKET, MB, Bench, CpuMeter, agent_s3, cpu_floor, print_ratios, loaded_cluster, peak_rss_mb, read_meta, run_br

from br_common.backupmeta.kind import BackupKind, rules
from br_common.fleet.messages import COMPRESSION_TYPES, KeyRange
from br_common.kvproto import brpb_pb2, brpb_pb2_grpc, kvrpcpb_pb2
from br_common.pd_client import PDClient
from br_coordinator.backup_plan import PlannedTask, plan_range


def store_stage(bench: Bench, kind: BackupKind, concurrency: int) -> tuple[float, list[Path]]:
    """(a): seconds for every store to back up the ranges it leads into local directories."""
    with PDClient(bench.state.pd_address) as pd:
        tasks = plan_range(pd, KeyRange(), kind)
        backup_ts, cluster_id = pd.tso(), pd.cluster_id
        addresses = {s.id: s.address for s in pd.stores()}
    by_store: dict[int, list[PlannedTask]] = {}
    for task in tasks:
        by_store.setdefault(task.store_id, []).append(task)
    out = bench.work / "stage-a"

    def one(store_id: int, task: PlannedTask, n: int) -> list[Path]:
        target = out / f"{store_id}-{n}"
        target.mkdir(parents=True)
        request = brpb_pb2.BackupRequest(
            cluster_id=cluster_id, start_key=task.range.start, end_key=task.range.end, end_version=backup_ts,
            is_raw_kv=rules(kind).is_raw_kv, cf=rules(kind).request_cf, compression_type=COMPRESSION_TYPES["zstd"],
            storage_backend=brpb_pb2.StorageBackend(local=brpb_pb2.Local(path=str(target))),
            dst_api_version=kvrpcpb_pb2.V1)
        with grpc.insecure_channel(addresses[store_id]) as channel:
            for response in brpb_pb2_grpc.BackupStub(channel).backup(request):
                if response.HasField("error"):
                    raise SystemExit(f"store {store_id} backup error: {response.error}")
        return sorted(p for p in target.rglob("*.sst"))

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency * len(by_store)) as pool:
        futures = [pool.submit(one, store, task, n) for store, ts in by_store.items() for n, task in enumerate(ts)]
        files = [path for f in futures for path in f.result()]
    return time.monotonic() - started, files


def upload_stage(bench: Bench, files: list[Path], streams: int) -> float:
    """(b): seconds to upload the same files with boto3 (s3transfer), `streams` at a time, with the
    agents' own client settings (checksum, signing, multipart sizes)."""
    client, extra, config = agent_s3(bench.endpoint)
    started = time.monotonic()
    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(lambda p: client.upload_file(str(p), BUCKET, f"stage-b/{p.parent.name}/{p.name}",
                                                   ExtraArgs=extra, Config=config), files))
    return time.monotonic() - started


def tool_uploads(bench: Bench, streams: int) -> dict[str, float]:
    """The same upload by rclone (Debian's package) and by the AWS CLI, when installed: what an
    operator copying the files by hand would get. Seconds per tool."""
    out: dict[str, float] = {}
    source = str(bench.work / "stage-a")
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    if shutil.which("rclone"):
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},  # AWS_CA_BUNDLE: rclone fails on it
               "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
               "RCLONE_CONFIG_BENCH_ENDPOINT": bench.endpoint, "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": "testing",
               "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": "testing"}
        out["rclone copy"] = _timed(["rclone", "copy", source, f"bench:{BUCKET}/stage-rclone",
                                     "--transfers", str(streams)], env)
    if shutil.which("aws"):
        config = bench.work / "aws-config"
        config.write_text(f"[default]\nregion = us-east-1\ns3 =\n  max_concurrent_requests = {streams}\n")
        env = {**os.environ, **keys, "AWS_CONFIG_FILE": str(config)}
        out["aws s3 cp --recursive"] = _timed(["aws", "s3", "cp", source, f"s3://{BUCKET}/stage-awscli",
                                               "--recursive", "--only-show-errors", "--endpoint-url",
                                               bench.endpoint], env)
    return out


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {done.stderr.strip()[-500:]}")
    return time.monotonic() - started


def br_stage(bench: Bench, kind: BackupKind, concurrency: int) -> tuple[float, int]:
    """(c): seconds of `br backup` and the SST bytes it stored."""
    prefix = f"stage-c-{time.monotonic_ns()}"
    verb = "raw" if kind == BackupKind.RAW else "full"
    elapsed, _ = run_br("backup", verb, "--pd", bench.state.pd_address, "-s",
                        f"s3://{BUCKET}/{prefix}?endpoint={bench.endpoint}", "--concurrency", str(concurrency),
                        broker=bench.broker, log_file=bench.work / "br-backup.log")
    return elapsed, read_meta(bench.endpoint, prefix).backup_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256MB", help="data set size (keys + values), e.g. 1GB")
    parser.add_argument("--kind", choices=["raw", "txn"], default="raw")
    parser.add_argument("--stores", type=int, default=3)
    parser.add_argument("--regions", type=int, default=24)
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=4, help="ranges in flight per store (br's default 4)")
    args = parser.parse_args()
    kind = BackupKind(args.kind)
    with loaded_cluster("stages", args.stores, args.regions, args.size, args.value_size, kind == BackupKind.TXN) as b:
        with CpuMeter(b.roles()) as a_cpu:
            a_time, files = store_stage(b, kind, args.concurrency)
        sst = sum(p.stat().st_size for p in files)
        with CpuMeter(b.roles()) as b_cpu:
            b_time = upload_stage(b, files, args.concurrency * args.stores)
        tools = tool_uploads(b, args.concurrency * args.stores)
        with CpuMeter(b.roles()) as c_cpu:
            c_time, c_bytes = br_stage(b, kind, args.concurrency)
        agent_rss = peak_rss_mb(b.agent_pids)
    rows = [("(a) store Backup RPC alone", a_time, sst), ("(b) boto3 upload alone", b_time, sst),
            *((f"    the same upload by {name}", seconds, sst) for name, seconds in tools.items()),
            ("(c) br backup end to end", c_time, c_bytes)]
    print(f"backup stages, {args.size} of {args.kind} data, {args.stores} stores, {len(files)} files:")
    for name, seconds, nbytes in rows:
        print(f"  {name:<44} {seconds:7.1f} s  {nbytes / MB / seconds:7.1f} MB/s of SST")
    for name, cpu in (("(a)", a_cpu), ("(b)", b_cpu), ("(c)", c_cpu)):
        print(f"  {name} {cpu.line()}")
    print(f"  agent peak RSS (VmHWM, the largest of {args.stores}): {agent_rss:.0f} MB (target: under 200 MB at 4 GB)")
    print_ratios(max(a_time, b_time), cpu_floor(a_cpu, b_cpu), c_time, "the store" if a_time >= b_time else "the upload")
    return 0


if __name__ == "__main__":
    sys.exit(main())
