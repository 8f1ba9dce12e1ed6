"""Faults over real processes (issue 13): a complete backup never changes after backupmeta is
written, whatever lands late; PD, store, agent and coordinator crashes and S3 faults (503s,
resets, a short outage, a stall, through a fault proxy the tests own) end in a backup that a
restore turns back into the source at backup_ts, with nothing left in any staging or import
directory. One source cluster with its fleet (`br-devcluster up`), holding raw KV and transactional
data side by side, and one target cluster with its own agents serve every scenario; the target is
emptied before each restore. An agent, a store or the coordinator SIGKILLed mid transactional
backup and again mid its restore (and a target store mid a raw restore) end the same way."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from br_common.backupmeta.layout import BACKUPMETA
from br_common.checksum import Checksum
from br_common.fleet import redis_client
from br_common.kvproto import brpb_pb2
from br_common.pd_client import PDClient
from br_common.txn_checksum import TxnChecksum
from br_devcluster import cluster
from br_devcluster.services.imds import AWS_CREDENTIAL_ENV
from br_devcluster.snapshot_kv import SnapshotKV
from tests.fixtures.devcluster import DevCluster
from tests.fixtures.fault_proxy import FaultProxy
from tests.integration.test_backup_support import AgentFleet, wipe
from tests.fixtures.br_runner import run_br

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **(extra or {})}


# transactions beside the raw data: short values (in the write CF only, so raw backups do not
# change) and some long ones (in the default CF, so txn backups have default files too)
TXN_LOADS = (["load", "--txn", "--size", "1MB", "--value-size", "200", "--seed", "7"],
             ["load", "--txn", "--keys", "100", "--value-size", "1000", "--seed", "8"])


@pytest.fixture(scope="module")
def dc(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("reliability") / "dc"
    try:
        for args in (["up", "--stores", "2", "--regions", "4"], ["load", "--size", "6MB"], *TXN_LOADS):
            done = subprocess.run([sys.executable, "-m", "br_devcluster.cli", *args, "--data-dir", str(data_dir)],
                                  capture_output=True, text=True, env=_env(), timeout=180)
            assert done.returncode == 0, done.stdout + done.stderr
        yield cluster.load_state(data_dir), data_dir
    finally:
        if (data_dir / cluster.STATE_FILE).exists():
            cluster.down(data_dir)


@pytest.fixture(scope="module")
def target(dc, tmp_path_factory):
    """The cluster every scenario restores into, with its agents on the source's Redis and S3
    (instance-profile credentials from the source's IMDS endpoint, as on one EC2 account)."""
    state, _ = dc
    data_dir = tmp_path_factory.mktemp("reliability-target")
    tdc = DevCluster(data_dir, cluster.up(data_dir, cluster.ClusterConfig(stores=2, replicas=1, regions=2)).state)
    env = {k: v for k, v in _env().items() if k not in AWS_CREDENTIAL_ENV}
    env |= {"AWS_EC2_METADATA_SERVICE_ENDPOINT": state.fleet.imds_url, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_CONFIG_FILE": os.devnull}
    agents = AgentFleet(tdc, state.fleet.broker_url, data_dir / "agents", env=env)
    try:
        agents.start_all()
        yield tdc, agents
    finally:
        agents.stop_all()
        tdc.kv.close()
        tdc.pd.close()
        cluster.down(data_dir)


def _storage(state: cluster.ClusterState, prefix: str, endpoint: str | None = None) -> str:
    return f"s3://{state.fleet.bucket}/{prefix}?endpoint={endpoint or state.fleet.s3_endpoint}"


def _br(state: cluster.ClusterState, *args: str, log: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return run_br([*args, "--broker", state.fleet.broker_url, "--log-file", str(log)], env=_env(), timeout=timeout)


def _start_br(state: cluster.ClusterState, *args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "br_coordinator.cli", *args, "--broker", state.fleet.broker_url,
                             "--log-file", str(log)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env())


def _backup_args(state: cluster.ClusterState, storage: str, *extra: str, kind: str = "raw") -> tuple[str, ...]:
    """kind raw: `br backup raw`; txn: `br backup full` (the transactional key space, as BR's)."""
    return ("backup", "raw" if kind == "raw" else "full", "--pd", state.pd_address, "-s", storage, *extra)


def _one_line_failure(done: subprocess.CompletedProcess) -> bool:
    errors = [line for line in done.stderr.splitlines() if line.startswith("br: error:")]
    return done.returncode == 1 and len(errors) == 1 and "Traceback" not in done.stderr


def _wait_uploads(state: cluster.ClusterState, data_dir: Path, prefix: str, count: int = 1,
                  timeout: float = 60.0) -> None:
    """Until `count` SSTs of the running backup are in storage (the job is well under way)."""
    s3 = _s3(state, data_dir)

    def uploaded() -> int:
        listed = s3.list_objects_v2(Bucket=state.fleet.bucket, Prefix=f"{prefix}/").get("Contents", [])
        return sum(1 for item in listed if item["Key"].endswith(".sst"))

    _wait(lambda: uploaded() >= count, timeout)


def _source_checksum(state: cluster.ClusterState, ts: int) -> Checksum:
    with PDClient(state.pd_address) as pd, SnapshotKV(pd) as kv:
        return kv.checksum(ts=ts)


def assert_restore_equals_source(dc, target, prefix: str, tmp_path: Path) -> None:  # noqa: ANN001
    """The scenario's backup, restored into the emptied target, is the source at its backup_ts; no
    staged file or staged import is left behind, on either side."""
    state, _ = dc
    tdc, _agents = target
    wipe(tdc)
    done = _br(state, "restore", "full", "--pd", tdc.pd_address, "-s", _storage(state, prefix),
               log=tmp_path / f"restore-{prefix}.log")
    assert done.returncode == 0, done.stdout + done.stderr
    assert_target_is_the_backup(dc, target, prefix)


def assert_target_is_the_backup(dc, target, prefix: str) -> None:  # noqa: ANN001
    """The target holds the source at the backup's end_version: RawChecksum for a raw backup, the
    Coprocessor checksum of the txn key space for a transactional one; nothing stays staged (a
    download a killed run had started may land late: withdrawn, it removes what it staged)."""
    state, data_dir = dc
    tdc, agents = target
    meta = _meta(state, data_dir, prefix)
    if meta.is_txn_kv:
        assert _txn_checksum(tdc.pd_address, tdc.pd.tso()) == _txn_checksum(state.pd_address, meta.end_version)
    else:
        assert tdc.kv.checksum() == _source_checksum(state, meta.end_version)
    deadline = time.monotonic() + 60
    while agents.leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not agents.leftovers()
    source_staging = data_dir / "agents"
    assert not [p for p in source_staging.rglob("jobs/*") if p.is_file()], "the source agents left staged files"


def _meta(state: cluster.ClusterState, data_dir: Path, prefix: str) -> brpb_pb2.BackupMeta:
    meta = brpb_pb2.BackupMeta()
    meta.ParseFromString(_s3(state, data_dir).get_object(Bucket=state.fleet.bucket,
                                                        Key=f"{prefix}/{BACKUPMETA}")["Body"].read())
    return meta


def _txn_checksum(pd_address: str, ts: int) -> Checksum:
    with PDClient(pd_address) as pd, TxnChecksum(pd) as txn:
        return txn.checksum_at(b"", b"", ts)


def _s3(state: cluster.ClusterState, data_dir: Path):  # noqa: ANN202 - boto3 client
    creds = json.loads((data_dir / "imds" / "role-credentials.json").read_text())
    return boto3.client("s3", endpoint_url=state.fleet.s3_endpoint, region_name="us-east-1",
                        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds.get("Token"))


def test_a_straggler_upload_of_an_interrupted_run_never_changes_the_complete_backup(dc, target, tmp_path):
    state, data_dir = dc
    proxy = FaultProxy("127.0.0.1", int(state.fleet.s3_endpoint.rsplit(":", 1)[1])).start()
    prefix = "straggler"
    storage = f"s3://{state.fleet.bucket}/{prefix}?endpoint={proxy.url}"
    argv = [sys.executable, "-m", "br_coordinator.cli", "backup", "raw", "--pd", state.pd_address, "-s", storage,
            "--broker", state.fleet.broker_url]
    try:
        proxy.stall(r"/2/")  # store 2's data uploads hang in the network
        first = subprocess.Popen([*argv, "--log-file", str(tmp_path / "first.log")], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, env=_env())
        proxy.wait_held(1)
        first.send_signal(signal.SIGINT)
        assert first.wait(30) == 130, first.stdout.read()
        proxy.stop_stalling()  # the held upload stays held: it is the straggler

        rerun = subprocess.run([*argv, "--log-file", str(tmp_path / "rerun.log")], capture_output=True, text=True,
                               env=_env(), timeout=180)
        assert rerun.returncode == 0 and "Backup complete" in rerun.stdout, rerun.stdout + rerun.stderr
        proxy.release()  # the first run's upload lands now, after backupmeta
        job_id = re.search(r"job: ([0-9a-f]{16})", rerun.stdout).group(1)
        _wait(lambda: proxy.passed_held >= 1 and not _running_tasks(state, job_id))  # the straggler is done
    finally:
        proxy.close()

    s3 = _s3(state, data_dir)
    meta = brpb_pb2.BackupMeta()
    meta.ParseFromString(s3.get_object(Bucket=state.fleet.bucket, Key=f"{prefix}/{BACKUPMETA}")["Body"].read())
    listed = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=state.fleet.bucket, Prefix=f"{prefix}/2/"):
        listed |= {item["Key"][len(prefix) + 1:] for item in page.get("Contents", [])}
    changed = [f.name for f in meta.files  # every file backupmeta names is still what the backup wrote
               if hashlib.sha256(s3.get_object(Bucket=state.fleet.bucket, Key=f"{prefix}/{f.name}")["Body"].read())
               .digest() != f.sha256]
    assert not changed, f"objects of the complete backup changed after backupmeta: {changed}"
    assert all(re.fullmatch(r"\d+/[0-9a-f]{16}/[^/]+\.sst", f.name) for f in meta.files)  # fenced to attempts
    stragglers = listed - {f.name for f in meta.files}
    assert stragglers, "the held upload should have landed, under its own attempt's name"
    assert_restore_equals_source(dc, target, prefix, tmp_path)
    # the straggler (and the interrupted run's other uploads) are orphans: br lists them, removes
    # them, and the backup is unchanged
    everything = {item["Key"][len(prefix) + 1:] for item in
                  s3.list_objects_v2(Bucket=state.fleet.bucket, Prefix=f"{prefix}/").get("Contents", [])}
    unused = {name for name in everything if name.endswith(".sst")} - {f.name for f in meta.files}
    assert stragglers <= unused
    orphans = ("fleet", "orphans", "--pd", state.pd_address, "-s", _storage(state, prefix))
    listing = _br(state, *orphans, log=tmp_path / "orphans.log")
    assert listing.returncode == 0 and all(name in listing.stdout for name in unused), listing.stdout
    removal = _br(state, *orphans, "--remove", log=tmp_path / "remove.log")
    assert removal.returncode == 0 and f"removed {len(unused)} orphan files" in removal.stdout, removal.stdout
    left = {item["Key"][len(prefix) + 1:] for item in
            s3.list_objects_v2(Bucket=state.fleet.bucket, Prefix=f"{prefix}/").get("Contents", [])}
    assert left == everything - unused


def _running_tasks(state: cluster.ClusterState, job_id: str) -> list[str]:
    """Flower's view of the job's tasks that have not ended (a held upload keeps its task running)."""
    with urllib.request.urlopen(f"{state.fleet.flower_url}/api/tasks", timeout=10) as reply:
        tasks = json.loads(reply.read()).values()
    return [t["uuid"] for t in tasks if f"job={job_id}" in (t.get("name") or "")
            and t["state"] in ("PENDING", "RECEIVED", "STARTED")]


def _wait(predicate, timeout: float = 60.0) -> None:  # noqa: ANN001
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)
    time.sleep(0.5)


OUTAGE_SECONDS = {"pd": 6.0, "store": 4.0}  # past gRPC's capped 2 s backoff several times over


def _stop_and_restart(data_dir: Path, name: str, seconds: float) -> None:
    cluster.stop_process(data_dir, name, kill=True)
    time.sleep(seconds)  # clients fail against it meanwhile (their reconnect backoff grows)
    cluster.start_process(data_dir, name)


def _finish_or_rerun(state: cluster.ClusterState, first: subprocess.Popen, args: tuple[str, ...],
                     tmp_path: Path, done: str = "Backup complete") -> str:
    """The first run either rode the fault out or failed with one line; then the very next run,
    with nothing else restarted, completes. Returns the completing run's output."""
    try:
        code = first.wait(180)
    finally:
        if first.poll() is None:
            first.kill()
    output = first.stdout.read()
    assert "Traceback" not in output, output
    if code == 0:
        return output
    assert code == 1 and output.rstrip().splitlines()[-1].startswith("br: error:"), output
    rerun = _br(state, *args, log=tmp_path / "rerun.log")
    assert rerun.returncode == 0 and done in rerun.stdout, rerun.stdout + rerun.stderr
    return rerun.stdout


@pytest.mark.parametrize("role", ["pd", "store"])
def test_pd_or_a_store_down_mid_backup_then_back(dc, target, tmp_path, role):
    """Killed mid-backup, down for a while, restarted on its port: PD, the other stores, the agents
    and br pick it up by themselves (gRPC's reconnect backoff is capped at 2 s, br_common.grpc_util),
    so the run rides it out or the very next one completes."""
    state, data_dir = dc
    prefix = f"{role}-outage"
    args = _backup_args(state, _storage(state, prefix))
    first = _start_br(state, *args, "--ratelimit", "1", log=tmp_path / "first.log")
    _wait_uploads(state, data_dir, prefix)
    name = "pd" if role == "pd" else state.by_role("store")[0].name
    _stop_and_restart(data_dir, name, OUTAGE_SECONDS[role])
    _finish_or_rerun(state, first, args, tmp_path)
    assert_restore_equals_source(dc, target, prefix, tmp_path)


def test_redis_killed_mid_backup_and_restarted(dc, target, tmp_path):
    """The broker SIGKILLed with tasks in flight and restarted on its port (its append-only file
    keeps the jobs' records and queues): every agent stays up and reconnects (a kombu close-time
    error used to end them), br waits the outage out, and the backup completes in the same run."""
    state, data_dir = dc
    prefix = "redis-restarted"
    agents = {e.name: e.pid for e in state.by_role("agent")}
    first = _start_br(state, *_backup_args(state, _storage(state, prefix), "--ratelimit", "1"),
                      log=tmp_path / "first.log")
    _wait_uploads(state, data_dir, prefix)
    _stop_and_restart(data_dir, "redis", 3.0)
    assert first.wait(180) == 0, first.stdout.read()
    after = cluster.load_state(data_dir)
    assert all(cluster.is_running(after.entry(name)) and after.entry(name).pid == pid for name, pid in agents.items())
    assert_restore_equals_source(dc, target, prefix, tmp_path)


def test_an_agent_killed_mid_backup_and_restarted(dc, target, tmp_path):
    """SIGKILL, as a crash or the OOM killer would; systemd restarts it. br sees the instance gone
    (a new one heartbeats) and resends the lost range; the lost one's staging is cleaned at start."""
    state, data_dir = dc
    prefix = "agent-killed"
    first = _start_br(state, *_backup_args(state, _storage(state, prefix), "--ratelimit", "1"),
                      log=tmp_path / "first.log")
    _wait_uploads(state, data_dir, prefix)
    _stop_and_restart(data_dir, state.by_role("agent")[0].name, 1.0)
    assert first.wait(180) == 0, first.stdout.read()
    assert_restore_equals_source(dc, target, prefix, tmp_path)


def test_the_coordinator_killed_mid_backup_then_rerun_resumes(dc, target, tmp_path):
    state, data_dir = dc
    prefix = "coordinator-killed"
    args = _backup_args(state, _storage(state, prefix))
    first = _start_br(state, *args, "--ratelimit", "1", log=tmp_path / "first.log")
    _wait_uploads(state, data_dir, prefix)
    first.kill()
    first.wait(30)
    client = redis_client(state.fleet.broker_url)
    client.delete(*client.keys("br:job:*:lease"))  # what its 30 s TTL does; skipped here
    rerun = _br(state, *args, log=tmp_path / "rerun.log")
    assert rerun.returncode == 0 and "Backup complete (resumed)" in rerun.stdout, rerun.stdout + rerun.stderr
    assert_restore_equals_source(dc, target, prefix, tmp_path)


# --- SIGKILL mid-backup and again mid-restore, for both kinds ---------------------------------------
STORE_2_FILES = r"/2/[0-9a-f]{16}/[^/]+\.sst"  # a backup's files from store 2: <store id>/<attempt>/<name>.sst


def _store_named(state: cluster.ClusterState, store_id: int) -> str:
    """The process name (store-N) of the source store PD knows by store_id."""
    with PDClient(state.pd_address) as pd:
        address = next(s.address for s in pd.stores() if s.id == store_id)
    return next(e.name for e in state.by_role("store") if e.address == address)


def _restore_args(state: cluster.ClusterState, tdc: DevCluster, prefix: str, endpoint: str) -> tuple[str, ...]:
    return ("restore", "full", "--pd", tdc.pd_address, "-s", _storage(state, prefix, endpoint))


def _hold_restore_mid_way(state: cluster.ClusterState, target, proxy: FaultProxy, earlier: set[bytes],  # noqa: ANN001
                          proc: subprocess.Popen) -> None:
    """The downloads of the source store 2's files are held in the network; wait until one is held
    and what passes is downloaded into a store (staged) or ingested (a file part checkpointed): the
    restore is well under way, with regions left to do."""
    _tdc, agents = target
    client = redis_client(state.fleet.broker_url)

    def under_way() -> bool:
        assert proc.poll() is None, "br restore ended before the fault: " + proc.stdout.read()
        checkpointed = any(client.hlen(key) for key in client.scan_iter(match="br:job:*:ranges") if key not in earlier)
        return proxy.held >= 1 and (checkpointed or bool(agents.staged_imports()))

    _wait(under_way)


def _job_id(log: Path, verb: str) -> str:
    """The job a running br works on, from its log (written as soon as the job is planned)."""
    pattern = re.compile(rf"{verb} job ([0-9a-f]{{16}})")
    _wait(lambda: log.exists() and pattern.search(log.read_text()) is not None)
    return pattern.search(log.read_text()).group(1)


def _downloading(agents: AgentFleet, log: Path) -> int:
    """The store whose agent runs one of this restore's downloads now (held in the network)."""
    job = _job_id(log, "restore")
    for store_id in agents.procs:
        lines = agents.log(store_id).splitlines()
        started = {m.group(1) for line in lines
                   if (m := re.search(rf"restore download job={job} .*\[([0-9a-f]+)\] received", line))}
        ended = {m.group(1) for line in lines if (m := re.search(r"\[([0-9a-f]+)\] (succeeded|failed|raised)", line))}
        if started - ended:
            return store_id
    raise AssertionError("no agent is downloading")


def _sigkill(role: str, first: subprocess.Popen, broker: str, data_dir: Path, name: str, release: Callable[[], None],
             agent: tuple[Callable[[], object], Callable[[], object]] | None = None) -> None:
    """SIGKILL the role of the side whose data_dir is given, then `release` what the fault proxy
    holds (the held work goes on meanwhile): the coordinator (br itself; its lease is dropped, which
    its 30 s TTL would do), a store (process `name`, restarted on its port after an outage) or an
    agent (process `name`, restarted a second later as systemd would; or `agent`: kill, start)."""
    if role == "coordinator":
        first.kill()
        first.wait(30)
        client = redis_client(broker)
        client.delete(*client.keys("br:job:*:lease"))
        release()
    elif role == "store" or agent is None:
        cluster.stop_process(data_dir, name, kill=True)
        release()
        time.sleep(2.0 if role == "store" else 1.0)  # the held work meets the dead store meanwhile
        cluster.start_process(data_dir, name)
    else:
        agent[0]()
        release()
        agent[1]()


def _complete(state: cluster.ClusterState, role: str, first: subprocess.Popen, args: tuple[str, ...],
              tmp_path: Path, verb: str) -> None:
    """After an agent's restart the same run completes; after a store's outage it does or the very
    next run does; after the coordinator's death the rerun resumes the job."""
    if role == "agent":
        assert first.wait(180) == 0, first.stdout.read()
    elif role == "store":
        _finish_or_rerun(state, first, args, tmp_path, f"{verb} complete")
    else:
        rerun = _br(state, *args, log=tmp_path / "rerun.log")
        assert rerun.returncode == 0 and f"{verb} complete (resumed)" in rerun.stdout, rerun.stdout + rerun.stderr


@pytest.mark.parametrize("kind, role", [("txn", "agent"), ("txn", "store"), ("txn", "coordinator"), ("raw", "store")])
def test_killed_mid_backup_and_mid_restore_then_rerun(dc, target, tmp_path, kind, role):
    """The role SIGKILLed mid-backup on the source, then mid-restore on the target, each job held
    mid-way by the fault proxy (a store: killed once the backup is planned, so all its ranges meet
    it dead; mid-restore, the store whose agent is downloading): each job ends complete in the same
    run or the rerun, and the target is the source at backup_ts. The other raw kills: mid-backup
    above, mid-restore (an agent, the coordinator) in test_restore."""
    state, data_dir = dc
    tdc, agents = target
    prefix = f"{kind}-{role}-killed"
    (tmp_path / "backup").mkdir()
    (tmp_path / "restore").mkdir()

    proxy = FaultProxy("127.0.0.1", int(state.fleet.s3_endpoint.rsplit(":", 1)[1])).start()
    try:
        if role == "store":  # the job's lock is held: planned (backup_ts, GC safe point), nothing sent yet
            proxy.stall(r"/backup\.lock\b")
        else:  # store 2's uploads hang in the network: the backup is held mid-way
            proxy.stall(STORE_2_FILES)
        args = _backup_args(state, _storage(state, prefix, proxy.url), kind=kind)
        first = _start_br(state, *args, log=tmp_path / "backup" / "first.log")
        proxy.wait_held(1)
        store = _store_named(state, 2)
        # what was held goes on: from a killed agent it is lost; the lock's ranges meet the dead store
        _sigkill(role, first, state.fleet.broker_url, data_dir,
                 store if role == "store" else store.replace("store", "agent"), proxy.release)
        _complete(state, role, first, args, tmp_path / "backup", "Backup")
        assert _meta(state, data_dir, prefix).is_txn_kv == (kind == "txn")

        wipe(tdc)
        proxy.stall(STORE_2_FILES, method="GET")  # now their downloads hang
        args = _restore_args(state, tdc, prefix, proxy.url)
        earlier = set(redis_client(state.fleet.broker_url).scan_iter(match="br:job:*:ranges"))
        log = tmp_path / "restore" / "first.log"
        first = _start_br(state, *args, log=log)
        _hold_restore_mid_way(state, target, proxy, earlier, first)
        store_id = _downloading(agents, log)  # its download goes on into the outage (store) or is lost (agent)
        _sigkill(role, first, state.fleet.broker_url, tdc.data_dir, tdc.store_entry(store_id).name, proxy.release,
                 (lambda: agents.kill(store_id), lambda: agents.start(store_id)))
        _complete(state, role, first, args, tmp_path / "restore", "Restore")
    finally:
        proxy.close()
    assert_target_is_the_backup(dc, target, prefix)


@pytest.mark.parametrize("how", ["503", "reset"])
def test_s3_throttling_and_connection_resets_are_retried(dc, target, tmp_path, how):
    state, data_dir = dc
    prefix = f"s3-{how}"
    proxy = FaultProxy("127.0.0.1", int(state.fleet.s3_endpoint.rsplit(":", 1)[1])).start()
    try:
        proxy.fail(r"\.sst", count=6, how=how)
        done = _br(state, *_backup_args(state, _storage(state, prefix, proxy.url)), log=tmp_path / "b.log")
    finally:
        proxy.close()
    assert done.returncode == 0 and "Backup complete" in done.stdout, done.stdout + done.stderr
    assert proxy.failed == 6
    assert_restore_equals_source(dc, target, prefix, tmp_path)


def test_a_short_s3_outage_mid_backup(dc, target, tmp_path):
    """S3 unreachable for a few seconds (every connection reset): botocore's retries ride it out,
    or the rerun completes."""
    state, data_dir = dc
    prefix = "s3-outage"
    proxy = FaultProxy("127.0.0.1", int(state.fleet.s3_endpoint.rsplit(":", 1)[1])).start()
    args = _backup_args(state, _storage(state, prefix, proxy.url))
    try:
        first = _start_br(state, *args, "--ratelimit", "1", log=tmp_path / "first.log")
        _wait_uploads(state, data_dir, prefix)
        proxy.outage(True)
        time.sleep(3.0)
        proxy.outage(False)
        _finish_or_rerun(state, first, args, tmp_path)
    finally:
        proxy.close()
    assert_restore_equals_source(dc, target, prefix, tmp_path)


def test_a_replayed_task_cannot_rewrite_a_complete_backup(dc, tmp_path):
    """Whoever can write to Redis can forge the job record back to "running" and replay a range
    task after the backup finished: the agent asks the storage itself (backupmeta present =
    complete) and uploads nothing; even past that check its fenced, exclusive uploads could not
    replace an object."""
    from celery import states  # noqa: PLC0415

    from br_common.fleet import messages as m  # noqa: PLC0415
    from br_common.fleet.app import make_app, send  # noqa: PLC0415
    from br_common.fleet.jobs import JobStore  # noqa: PLC0415
    from br_common.fleet.queues import store_queue  # noqa: PLC0415
    from br_common.pd_client import PDClient  # noqa: PLC0415

    state, data_dir = dc
    prefix = "replayed"
    storage = f"s3://{state.fleet.bucket}/{prefix}?endpoint={state.fleet.s3_endpoint}"
    done = subprocess.run([sys.executable, "-m", "br_coordinator.cli", "backup", "raw", "--pd", state.pd_address,
                           "-s", storage, "--broker", state.fleet.broker_url, "--log-file", str(tmp_path / "b.log")],
                          capture_output=True, text=True, env=_env(), timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = re.search(r"job: ([0-9a-f]{16})", done.stdout).group(1)
    s3 = _s3(state, data_dir)
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=state.fleet.bucket, Prefix=prefix)["Contents"]}

    app = make_app(state.fleet.broker_url)
    jobs = JobStore(app.backend.client, job_id)
    jobs._redis.hset(jobs.key, "status", "running")  # the forgery: the record says the job runs again
    jobs._redis.set(jobs.lease_key, "forged", px=60_000)
    with PDClient(state.pd_address) as pd:
        store_id = pd.stores()[0].id
        backup_ts = jobs.load().job_ts
    task = m.BackupRangeTask(job_id=job_id, attempt="f" * 16, cluster_id=state.cluster_id, store_id=store_id,
                             range=m.KeyRange(), backup_ts=backup_ts,
                             storage=m.StorageSpec(url=storage))
    result = send(app, m.BACKUP_RANGE, task, queue=store_queue(state.cluster_id, store_id), task_id="f" * 16)
    _wait(lambda: result.state in states.READY_STATES)
    assert result.state == states.REVOKED and "already holds a complete backup" in str(result.result)
    after = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=state.fleet.bucket, Prefix=prefix)["Contents"]}
    assert after == before
