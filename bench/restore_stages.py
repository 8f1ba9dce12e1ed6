"""Restore, stage by stage, on one backup: which stage bounds `br restore`, and how much the
pipeline loses against it.

    python bench/restore_stages.py --size 256MB [--kind raw|txn --stores 3 --target-stores 3 --concurrency 4]

Starts SeaweedFS, Redis and a source devcluster with its agents, loads `--size` of raw or
transactional data and takes `br backup raw|full`; then measures on that backup:
  (a) download: the backup's files downloaded alone with boto3/s3transfer, `--concurrency`
                streams per target store;
  (b) store:    ImportSST Download + MultiIngest of those local files alone, into an empty
                target already split at the files' boundaries (one replica: each region's
                files go to its leader), `--concurrency` regions in flight per store;
  (c) br:       `br restore full` end to end into another empty target of the same shape, with
                its own agents (checksum on, as operators run it);
and prints each stage's time and MB/s (of SST bytes) and the ratio slower(a, b) / c (target >= 0.8).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from bench_setup import BUCKET, MB, CpuMeter, agent_s3, cluster_roles, cpu_floor, print_ratios, keep_logs, load, peak_rss_mb, read_meta, run_br, start_agents

from br_common import procs
from br_common.backupmeta.kind import BackupKind, rules, sst_cf
from br_common.kvproto import brpb_pb2, import_sstpb_pb2, import_sstpb_pb2_grpc, kvrpcpb_pb2
from br_common.pd_client import PDClient, RegionInfo
from br_devcluster import cluster
from br_devcluster.services import start_redis, start_seaweedfs


def download_stage(endpoint: str, prefix: str, meta: brpb_pb2.BackupMeta, streams: int, into: Path) -> float:
    """(a): seconds to download every backup file with boto3, `streams` at a time."""
    client, _, config = agent_s3(endpoint)  # the agents' client settings
    into.mkdir(parents=True)
    started = time.monotonic()
    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(lambda f: client.download_file(BUCKET, f"{prefix}/{f.name}", str(into / _local(f)),
                                                     Config=config), meta.files))
    return time.monotonic() - started


def _local(f: brpb_pb2.File) -> str:
    return f.name.replace("/", "_")


def store_stage(state: cluster.ClusterState, meta: brpb_pb2.BackupMeta, kind: BackupKind, files_dir: Path,
                concurrency: int) -> float:
    """(b): split the target at the files' bounds and scatter (not timed, as br does first), then
    time Download + MultiIngest."""
    kind_rules = rules(kind)
    with PDClient(state.pd_address) as pd:
        bounds = {b for f in meta.files for b in kind_rules.pd_bounds(f.start_key, f.end_key) if b}
        pd.split_regions(sorted(bounds))
        pd.scatter_regions([info.id for info in pd.scan_regions()])
        cluster_id = pd.cluster_id
        addresses = {s.id: s.address for s in pd.stores()}
        by_region: dict[int, tuple[RegionInfo, list[brpb_pb2.File]]] = {}
        for f in meta.files:
            info = pd.region(kind_rules.pd_bounds(f.start_key, f.end_key)[0])
            by_region.setdefault(info.id, (info, []))[1].append(f)
    by_store: dict[int, list[tuple[RegionInfo, list[brpb_pb2.File]]]] = defaultdict(list)
    for info, files in by_region.values():
        by_store[info.leader_store_id].append((info, files))
    channels = {store: grpc.insecure_channel(address) for store, address in addresses.items()}

    def one(info: RegionInfo, files: list[brpb_pb2.File]) -> None:
        stub = import_sstpb_pb2_grpc.ImportSSTStub(channels[info.leader_store_id])
        ctx = kvrpcpb_pb2.Context(region_id=info.id, region_epoch=info.region.region_epoch, peer=info.leader,
                                  cluster_id=cluster_id)
        metas = []
        for f in files:
            start, end = kind_rules.pd_bounds(f.start_key, f.end_key)
            sst = import_sstpb_pb2.SSTMeta(uuid=uuid.uuid4().bytes, range=import_sstpb_pb2.Range(start=start, end=end),
                                           end_key_exclusive=True, cf_name=sst_cf(f.cf), region_id=info.id,
                                           region_epoch=info.region.region_epoch)
            response = stub.Download(import_sstpb_pb2.DownloadRequest(
                sst=sst, name=_local(f), storage_backend=brpb_pb2.StorageBackend(local=brpb_pb2.Local(
                    path=str(files_dir))), rewrite_rule=import_sstpb_pb2.RewriteRule(),  # as the agents
                is_raw_kv=kind_rules.is_raw_kv, context=ctx), timeout=600)
            if response.HasField("error") and response.error.message:
                raise SystemExit(f"Download: {response.error}")
            if not response.is_empty:
                metas.append(import_sstpb_pb2.SSTMeta(
                    uuid=sst.uuid, range=response.range, cf_name=sst.cf_name, region_id=info.id,
                    region_epoch=info.region.region_epoch, length=response.length))
        done = stub.MultiIngest(import_sstpb_pb2.MultiIngestRequest(context=ctx, ssts=metas), timeout=600)
        if done.HasField("error"):
            raise SystemExit(f"MultiIngest: {done.error}")

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency * len(addresses)) as pool:
        futures = [pool.submit(one, info, files) for work in by_store.values() for info, files in work]
        for future in futures:
            future.result()
    elapsed = time.monotonic() - started
    for channel in channels.values():
        channel.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256MB", help="data set size (keys + values), e.g. 1GB")
    parser.add_argument("--kind", choices=["raw", "txn"], default="raw")
    parser.add_argument("--stores", type=int, default=3, help="source stores")
    parser.add_argument("--regions", type=int, default=24, help="source regions")
    parser.add_argument("--target-stores", type=int, default=3)
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=4, help="per store, as br restore --concurrency")
    args = parser.parse_args()
    kind = BackupKind(args.kind)
    work = Path(tempfile.mkdtemp(prefix="br-bench-restore-stages-"))
    services, dirs, agents = [], [], []
    shape = cluster.ClusterConfig(stores=args.target_stores, replicas=1, regions=1)
    try:
        services += [start_seaweedfs(work / "seaweedfs", bucket=BUCKET), start_redis(work / "redis")]
        endpoint, base = services[0].url, services[1].url.rsplit("/", 1)[0]
        dirs.append(work / "source")
        source = cluster.up(dirs[-1], cluster.ClusterConfig(stores=args.stores, regions=args.regions)).state
        load(source, args.size, args.value_size, kind == BackupKind.TXN)
        agents += start_agents(source, f"{base}/0", work, "source")
        prefix, verb = f"restore-stages-{int(time.time())}", "raw" if kind == BackupKind.RAW else "full"
        url = f"s3://{BUCKET}/{prefix}?endpoint={endpoint}"
        run_br("backup", verb, "--pd", source.pd_address, "-s", url, broker=f"{base}/0", log_file=work / "backup.log")
        meta = read_meta(endpoint, prefix)
        _stop(agents, dirs)
        served = {"s3": [services[0].pid], "redis": [services[1].pid]}
        with CpuMeter(served) as a_cpu:
            a_time = download_stage(endpoint, prefix, meta, args.concurrency * args.target_stores, work / "files")
        dirs.append(work / "target-b")
        target_b = cluster.up(dirs[-1], shape).state
        with CpuMeter({**served, **cluster_roles(target_b)}) as b_cpu:
            b_time = store_stage(target_b, meta, kind, work / "files", args.concurrency)
        _stop(agents, dirs)
        dirs.append(work / "target-c")
        target = cluster.up(dirs[-1], shape).state
        target_agents = start_agents(target, f"{base}/1", work, "target")
        agents += target_agents
        with CpuMeter({**served, **cluster_roles(target), "agents": list(agents)}) as c_cpu:
            c_time, _ = run_br("restore", "full", "--pd", target.pd_address, "-s", url, "--concurrency",
                               str(args.concurrency), broker=f"{base}/1", log_file=work / "restore.log")
        _report(args, meta, a_time, b_time, c_time)
        for name, cpu in (("(a)", a_cpu), ("(b)", b_cpu), ("(c)", c_cpu)):
            print(f"  {name} {cpu.line()}")
        print_ratios(max(a_time, b_time), cpu_floor(a_cpu, b_cpu), c_time,
                     "the download" if a_time >= b_time else "the store")
        print(f"  restore agent peak RSS (VmHWM, the largest of {args.target_stores}): "
              f"{peak_rss_mb(target_agents):.0f} MB")
        return 0
    finally:
        _stop(agents, dirs)
        for handle in reversed(services):
            handle.stop()
        keep_logs(work)
        shutil.rmtree(work, ignore_errors=True)  # cluster and S3 data: gigabytes


def _stop(agents: list[int], dirs: list[Path]) -> None:
    """Stop the agents and clusters started so far (the next stage has the CPU to itself)."""
    for pid in agents:
        procs.stop_pid(pid)
    agents.clear()
    for data_dir in dirs:
        if (data_dir / cluster.STATE_FILE).exists():
            cluster.down(data_dir)


def _report(args: argparse.Namespace, meta: brpb_pb2.BackupMeta, a: float, b: float, c: float) -> None:
    size = meta.backup_size
    print(f"restore stages, {args.size} of {args.kind} data ({size / MB:.0f} MB of SST in {len(meta.files)} files) "
          f"into {args.target_stores} stores:")
    for name, seconds in (("(a) boto3 download alone", a), ("(b) store Download+Ingest alone", b),
                          ("(c) br restore end to end", c)):
        print(f"  {name:<32} {seconds:7.1f} s  {size / MB / seconds:7.1f} MB/s of SST")


if __name__ == "__main__":
    sys.exit(main())
