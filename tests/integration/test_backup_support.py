"""Helpers (no tests) of the backup and restore integration tests: loaded devclusters, a
writer thread, agents as real `br-agent` processes, the `br` CLI as a subprocess, S3 URLs,
downloads and checksums, and a Download+MultiIngest restore."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import boto3
import grpc

from br_common import procs
from br_common.checksum import Checksum
from br_common.fleet import redis_client
from br_common.fleet.registry import Registry
from br_common.grpc_util import channel_options
from br_common.kvproto import brpb_pb2, devclusterpb_pb2, devclusterpb_pb2_grpc, import_sstpb_pb2, \
    import_sstpb_pb2_grpc, kvrpcpb_pb2
from br_common.pd_client import PDClient
from br_common.tikv_client import RawKVClient
from br_devcluster import cluster
from br_devcluster.load import KeyGen
from tests.fixtures import br_runner
from tests.fixtures.devcluster import DevCluster

REPO = Path(__file__).resolve().parents[2]
HOST_ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@contextmanager
def loaded_cluster(data_dir: Path, config: cluster.ClusterConfig, gen: KeyGen) -> Iterator[DevCluster]:
    """A devcluster holding all of `gen`'s keys; stopped (by PID) at the end, whatever happened."""
    try:
        handle = DevCluster(data_dir, cluster.up(data_dir, config).state)
        handle.kv.batch_put(gen.pairs(0, gen.spec.keys))
        yield handle
        handle.kv.close()
        handle.pd.close()
    finally:
        if (data_dir / cluster.STATE_FILE).exists():
            cluster.down(data_dir)


class Writer(threading.Thread):
    """Keeps writing `batch(round)` (overwrites and new keys) while a backup runs."""

    def __init__(self, pd_address: str, batch: Callable[[int], list[tuple[bytes, bytes]]]) -> None:
        super().__init__(daemon=True)
        self.pd = PDClient(pd_address)
        self.kv = RawKVClient(self.pd, max_attempts=30)
        self.batch = batch
        self.stop = threading.Event()
        self.rounds = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.kv.batch_put(self.batch(self.rounds))
            self.rounds += 1

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=30)
        self.kv.close()
        self.pd.close()


def wipe(dc: DevCluster) -> None:
    """Empty a devcluster (the devcluster's admin DropRange on every store), so that another test
    can restore into it; regions stay as they are."""
    for address in dc.store_addresses().values():
        with grpc.insecure_channel(address, options=channel_options()) as channel:
            devclusterpb_pb2_grpc.DevStoreStub(channel).DropRange(
                devclusterpb_pb2.DropRangeRequest(cluster_id=dc.cluster_id, start_key=b"", end_key=b""), timeout=30)
    assert dc.kv.scan(limit=1) == []


def forget_jobs(broker: str) -> None:
    """Drop every job record, lease and checkpoint from a broker database (agents' heartbeats stay)."""
    client = redis_client(broker)
    keys = list(client.scan_iter(match="br:job:*"))
    if keys:
        client.delete(*keys)


class AgentFleet:
    """One br-agent process per store of a devcluster, on one broker; stopped by PID."""

    def __init__(self, dc, broker: str, work_dir: Path, env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None, metrics: bool = False) -> None:
        self.dc = dc
        self.broker = broker
        self.work_dir = work_dir
        self.env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
        self.extra_args = extra_args or []
        self.procs: dict[int, subprocess.Popen] = {}
        self.metrics_ports: dict[int, int] = {}  # with metrics=True: each agent's Prometheus port
        self.metrics = metrics
        self.registry = Registry(redis_client(broker))

    def start_all(self) -> "AgentFleet":
        for store_id in self.dc.store_addresses():
            self.start(store_id, wait=False)
        self.wait_registered()
        return self

    def start(self, store_id: int, wait: bool = True) -> None:
        address = self.dc.store_addresses()[store_id]
        if self.metrics:
            self.metrics_ports.setdefault(store_id, procs.free_port())
        args = [sys.executable, "-m", "br_agent.cli", "--store", address, "--pd", self.dc.pd_address,
                "--broker", self.broker, "--staging-dir", str(self.staging(store_id)), "--concurrency", "6",
                "--metrics-port", str(self.metrics_ports.get(store_id, 0)),
                "--store-import-dir", str(self.dc.import_dir(store_id)), *self.extra_args]
        self.procs[store_id] = procs.spawn(args, self.work_dir / f"agent-{store_id}.log", env=self.env)
        if wait:
            self.wait_registered()

    def staging(self, store_id: int) -> Path:
        return self.work_dir / f"staging-{store_id}"

    def log(self, store_id: int) -> str:
        return (self.work_dir / f"agent-{store_id}.log").read_text(errors="replace")

    def staged_files(self) -> list[Path]:
        """What the agents hold in their staging directories (nothing once every attempt ended)."""
        return [p for sid in self.procs for p in self.staging(sid).joinpath("jobs").rglob("*") if p.is_file()]

    def staged_imports(self) -> list[Path]:
        """What the stores staged (TiKV's import directory) and nobody ingested; temp files included."""
        return [p for sid in self.procs for p in self.dc.import_dir(sid).iterdir() if p.suffix in (".sst", ".tmp")]

    def leftovers(self) -> list[Path]:
        return self.staged_files() + self.staged_imports()

    def wait_registered(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = {(a.store_id, a.pid) for a in self.registry.alive()}
            if all((sid, p.pid) in live for sid, p in self.procs.items()):
                time.sleep(1.0)  # the Celery consumer comes up just after the first heartbeat
                return
            for sid, proc in self.procs.items():
                assert proc.poll() is None, f"br-agent of store {sid} exited:\n{self.log(sid)[-3000:]}"
            time.sleep(0.1)
        raise TimeoutError("agents did not register")

    def kill(self, store_id: int) -> None:
        proc = self.procs[store_id]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        """All at once: a Celery worker's warm shutdown takes about a second."""
        with ThreadPoolExecutor(max_workers=max(1, len(self.procs))) as pool:
            list(pool.map(lambda proc: procs.stop_pid(proc.pid), self.procs.values()))
        self.procs.clear()


def run_br(*args: str, broker: str, env: dict[str, str] | None = None, timeout: float = 180.0,
           log_file: Path | None = None) -> subprocess.CompletedProcess:
    """`br ...` as the operator runs it (no AWS credentials in its environment)."""
    full = [*args, "--broker", broker]
    if log_file is not None:
        full += ["--log-file", str(log_file)]
    clean = {k: v for k, v in (env or os.environ).items() if not k.startswith("AWS_")}
    return br_runner.run_br(full, env=clean, timeout=timeout)


def start_br(*args: str, broker: str, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    full = [sys.executable, "-m", "br_coordinator.cli", *args, "--broker", broker]
    clean = {k: v for k, v in (env or os.environ).items() if not k.startswith("AWS_")}
    return procs.spawn(full, log_path, env=clean, cwd=REPO)


def s3_admin(endpoint: str):  # noqa: ANN201 - boto3 client
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def lift_iam(endpoint: str) -> None:
    """Stop enforcing IAM on a moto server (after a test restricted it), e.g. to read as admin."""
    request = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"inf", method="POST",
                                     headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=10).read()


def moto_url(endpoint: str, bucket: str, prefix: str = "", keys: tuple[str, str] | None = None) -> str:
    """prefix "" = the bucket's root: moto 5.2.1 with IAM enforced rejects the signature of a
    ListObjectsV2 whose prefix holds a '/', which a backup under a folder needs (AWS does not)."""
    url = f"s3://{bucket}/{prefix}?endpoint={endpoint}" if prefix else f"s3://{bucket}?endpoint={endpoint}"
    return url + (f"&access-key={keys[0]}&secret-access-key={keys[1]}" if keys else "")


def files_checksum(meta: brpb_pb2.BackupMeta) -> Checksum:
    """What backupmeta's files say the backed-up data sums to."""
    total = Checksum()
    for f in meta.files:
        total = total.merge(Checksum(crc64xor=f.crc64xor, total_kvs=f.total_kvs, total_bytes=f.total_bytes))
    return total


def read_backupmeta(client, bucket: str, prefix: str) -> brpb_pb2.BackupMeta:  # noqa: ANN001
    meta = brpb_pb2.BackupMeta()
    key = f"{prefix}/backupmeta" if prefix else "backupmeta"
    meta.ParseFromString(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    return meta


def download_files(client, bucket: str, prefix: str, meta: brpb_pb2.BackupMeta, root: Path) -> None:  # noqa: ANN001
    for f in meta.files:
        target = root / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, f"{prefix}/{f.name}", str(target))
        assert target.stat().st_size == f.size


def restore_files(dc, root: Path, files: list[brpb_pb2.File], exact_regions: bool = False) -> None:  # noqa: ANN001
    """As BR restores: split at file boundaries, Download on every peer, MultiIngest on the leader.

    exact_regions: also assert that the split left one region per file (a target with no other splits)."""
    files = sorted(files, key=lambda f: f.start_key)
    bounds = sorted({k for f in files for k in (f.start_key, f.end_key) if k})
    if bounds:
        dc.pd.split_regions(bounds)
    local = brpb_pb2.StorageBackend(local=brpb_pb2.Local(path=str(root)))
    addresses = dc.store_addresses()
    for f in files:
        info = dc.pd.region(f.start_key)
        if exact_regions:
            assert info.region.start_key == f.start_key and info.region.end_key == f.end_key  # split happened
        meta = import_sstpb_pb2.SSTMeta(uuid=uuid.uuid4().bytes, cf_name="default", region_id=info.id,
                                        region_epoch=info.region.region_epoch, end_key_exclusive=True,
                                        range=import_sstpb_pb2.Range(start=f.start_key, end=f.end_key))
        for peer in info.region.peers:
            stub = import_sstpb_pb2_grpc.ImportSSTStub(grpc.insecure_channel(addresses[peer.store_id],
                                                                             options=channel_options()))
            answer = stub.Download(import_sstpb_pb2.DownloadRequest(sst=meta, name=f.name, storage_backend=local,
                                                                    is_raw_kv=True), timeout=60)
            assert not answer.HasField("error"), answer.error.message
        ctx = kvrpcpb_pb2.Context(region_id=info.id, region_epoch=info.region.region_epoch, peer=info.leader)
        leader = import_sstpb_pb2_grpc.ImportSSTStub(grpc.insecure_channel(addresses[info.leader_store_id]))
        answer = leader.MultiIngest(import_sstpb_pb2.MultiIngestRequest(context=ctx, ssts=[meta]), timeout=60)
        assert not answer.HasField("error"), answer.error.message


def summary_value(stdout: str, key: str) -> str:
    for line in stdout.splitlines():
        if line.strip().startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {key!r} in the summary:\n{stdout}")
