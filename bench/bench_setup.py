"""What the throughput benchmarks share: S3 admin client, loading a devcluster, one br-agent per
store, running `br` as the operator does, reading backupmeta. Imported by the scripts beside
it (`python bench/<name>.py` puts this folder on sys.path).
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
from br_devcluster.txn_kv import TxnKV

BUCKET = "bench"
MB = 1e6


def keep_logs(work: Path) -> None:
    """BENCH_KEEP_LOGS=DIR: copy the run's logs (br's, the agents', the stores') there before the
    work directory goes, to see where a stage spent its time."""
    keep = os.environ.get("BENCH_KEEP_LOGS")
    if not keep:
        return
    for log_file in work.rglob("*.log"):
        target = Path(keep) / log_file.relative_to(work)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_file, target)


def agent_s3(endpoint: str):  # noqa: ANN201 - (boto3 client, ExtraArgs, TransferConfig)
    """A boto3 client, upload ExtraArgs and TransferConfig with the agents' own settings (checksum,
    signing, multipart sizes, retries): the baseline stages transfer as the agents do."""
    from boto3.s3.transfer import TransferConfig  # noqa: PLC0415

    from br_common.storage import StorageOptions, parse_storage_url  # noqa: PLC0415
    from br_common.storage.s3 import transfer_config, upload_args  # noqa: PLC0415
    from br_common.storage.s3_session import make_client  # noqa: PLC0415

    location = parse_storage_url(f"s3://{BUCKET}/bench?endpoint={endpoint}&access-key=testing"
                                 "&secret-access-key=testing")
    options = StorageOptions()
    agents = transfer_config(options)  # s3transfer's; boto3's upload_file takes its own subclass
    config = TransferConfig(multipart_threshold=agents.multipart_threshold,
                            multipart_chunksize=agents.multipart_chunksize,
                            max_concurrency=agents.max_request_concurrency, max_io_queue=agents.max_io_queue_size)
    return make_client(location, options), upload_args(location, options), config


def s3_client(endpoint: str):  # noqa: ANN201 - boto3 client
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def load(state: cluster.ClusterState, size: str, value_size: int, txn: bool = False) -> KeyGen:
    """Write `size` of keys and values into the cluster (4 writers; raw, or with txn in
    transactions of 4 MiB as `br-devcluster load --txn` does), printing the time it took."""
    gen = KeyGen(LoadSpec.from_size(parse_size(size), value_size, seed=7))
    with PDClient(state.pd_address) as pd, (TxnKV(pd) if txn else RawKVClient(pd)) as kv:
        started = time.monotonic()
        run_load(gen, kv.commit if txn else kv.batch_put, 4 << 20, writers=4)
        print(f"loaded {gen.spec.total_bytes / MB:.0f} MB ({gen.spec.keys} keys, {'txn' if txn else 'raw'}) in "
              f"{time.monotonic() - started:.1f}s")
    return gen


def start_agents(state: cluster.ClusterState, broker: str, work: Path, tag: str = "") -> list[int]:
    """One br-agent per store (S3 keys in their environment); returns once all consume."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    name = f"{tag}-" if tag else ""
    pids = []
    for n, entry in enumerate(state.by_role("store"), 1):
        args = [sys.executable, "-m", "br_agent.cli", "--store", entry.address, "--pd", state.pd_address,
                "--broker", broker, "--staging-dir", str(work / f"staging-{name}{n}"), "--log-level", "warn"]
        pids.append(procs.spawn(args, work / f"agent-{name}{n}.log", env=env).pid)
    registry = Registry(redis_client(broker))
    deadline = time.monotonic() + 60
    while len({a.store_id for a in registry.alive()}) < len(pids):
        if time.monotonic() > deadline:
            raise SystemExit("agents did not register; see " + str(work))
        time.sleep(0.2)
    time.sleep(1.5)  # Celery consumers come up just after the first heartbeat
    return pids


def peak_rss_mb(pids: list[int]) -> float:
    """The largest peak resident set (VmHWM) among the processes, in MB (0 when all are gone)."""
    peaks = [0.0]
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) * 1024 / MB for line in status.splitlines() if line.startswith("VmHWM:")]
    return max(peaks)


def run_br(*args: str, broker: str, log_file: Path) -> tuple[float, str]:
    """`br ...` without AWS keys in its environment; (seconds it took, its stdout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "br_coordinator.cli", *args, "--broker", broker,
                           "--log-file", str(log_file)], env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"br {args[0]} failed: {done.stderr}")
    return elapsed, done.stdout


def read_meta(endpoint: str, prefix: str) -> brpb_pb2.BackupMeta:
    meta = brpb_pb2.BackupMeta()
    meta.ParseFromString(s3_client(endpoint).get_object(Bucket=BUCKET, Key=f"{prefix}/backupmeta")["Body"].read())
    return meta


@dataclass
class Bench:
    work: Path
    state: cluster.ClusterState
    broker: str
    endpoint: str
    agent_pids: list[int]
    service_pids: dict[str, int]  # 's3', 'redis'

    def roles(self) -> dict[str, list[int]]:
        """Every process of the fleet by role, for CpuMeter."""
        return {**cluster_roles(self.state), "agents": self.agent_pids,
                **{name: [pid] for name, pid in self.service_pids.items()}}


def cluster_roles(state: cluster.ClusterState) -> dict[str, list[int]]:
    """A devcluster's processes by role, for CpuMeter."""
    return {"stores": [e.pid for e in state.by_role("store")], "pd": [e.pid for e in state.by_role("pd")]}


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process, all its threads (0 when gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


class CpuMeter:
    """CPU seconds each role spent over a stage, `br` (a child of this process) and the bench's own
    work included: on 2 cores the stages of a job share the CPU, so their sum is what bounds it.

        with CpuMeter(bench.roles()) as cpu: ...; print(cpu.line())
    """

    def __init__(self, roles: dict[str, list[int]]) -> None:
        self.roles = roles
        self.spent: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        out = {role: sum(_cpu_seconds(pid) for pid in pids) for role, pids in self.roles.items()}
        out["bench"] = own.ru_utime + own.ru_stime
        out["br"] = children.ru_utime + children.ru_stime  # reaped subprocesses: `br`, rclone, aws
        return out

    def __enter__(self) -> CpuMeter:
        self._start, self._wall = self._sample(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        self.wall = time.monotonic() - self._wall
        self.spent = {role: end[role] - self._start[role] for role in end if end[role] - self._start[role] >= 0.05}

    def total(self) -> float:
        return sum(self.spent.values())

    def line(self) -> str:
        total = self.total()
        parts = ", ".join(f"{role} {seconds:.1f}" for role, seconds in sorted(self.spent.items(), key=lambda i: -i[1]))
        return f"CPU {total:.1f} s of {self.wall * (os.cpu_count() or 1):.1f} available ({parts})"


@contextmanager
def loaded_cluster(tag: str, stores: int, regions: int, size: str, value_size: int,
                   txn: bool = False) -> Iterator[Bench]:
    """SeaweedFS, Redis, a devcluster loaded with `size` of data and one agent per store, in a
    fresh temporary directory; everything is stopped by PID and removed at the end."""
    work = Path(tempfile.mkdtemp(prefix=f"br-bench-{tag}-"))
    services, data_dir, agents = [], work / "cluster", []
    try:
        services.append(start_seaweedfs(work / "seaweedfs", bucket=BUCKET))
        services.append(start_redis(work / "redis"))
        state = cluster.up(data_dir, cluster.ClusterConfig(stores=stores, regions=regions)).state
        load(state, size, value_size, txn)
        agents = start_agents(state, services[1].url, work)
        yield Bench(work, state, services[1].url, services[0].url, agents,
                    {"s3": services[0].pid, "redis": services[1].pid})
    finally:
        for pid in agents:
            procs.stop_pid(pid)
        if (data_dir / cluster.STATE_FILE).exists():
            cluster.down(data_dir)
        for handle in reversed(services):
            handle.stop()
        keep_logs(work)
        shutil.rmtree(work, ignore_errors=True)  # the cluster and S3 data: as big as the data set


def cpu_floor(*stages: CpuMeter) -> float:
    """The least wall time the stages need together when they share this machine's cores: their
    CPU seconds over the cores (on 2 cores the stages of a job cannot all run at full speed at once)."""
    return sum(stage.total() for stage in stages) / (os.cpu_count() or 1)


def print_ratios(slower: float, floor: float, job: float, bound: str) -> None:
    """The issue's ratio (the slower stage alone against the job), and the same against the CPU floor."""
    print(f"ratio slower(a, b) / c = {slower / job:.2f}  (target >= 0.8; bound by {bound})")
    print(f"ratio max(slower(a, b), CPU floor {floor:.1f} s) / c = {max(slower, floor) / job:.2f}  (what the pipeline "
          "loses once the stages' CPU has to share the cores)")
