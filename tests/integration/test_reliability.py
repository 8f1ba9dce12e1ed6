"""Faults over real processes (issue 13): a complete backup never changes after backupmeta is
written, whatever lands late. The agents reach S3 through a fault proxy the test owns."""
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
from pathlib import Path

import boto3
import pytest

from br_common.backup_layout import BACKUPMETA
from br_common.kvproto import brpb_pb2
from br_devcluster import cluster
from tests.fixtures.fault_proxy import FaultProxy

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **(extra or {})}


@pytest.fixture(scope="module")
def dc(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("reliability") / "dc"
    try:
        for args in (["up", "--stores", "2", "--regions", "4"], ["load", "--size", "6MB"]):
            done = subprocess.run([sys.executable, "-m", "br_devcluster.cli", *args, "--data-dir", str(data_dir)],
                                  capture_output=True, text=True, env=_env(), timeout=180)
            assert done.returncode == 0, done.stdout + done.stderr
        yield cluster.load_state(data_dir), data_dir
    finally:
        if (data_dir / cluster.STATE_FILE).exists():
            cluster.down(data_dir)


def _s3(state: cluster.ClusterState, data_dir: Path):  # noqa: ANN202 - boto3 client
    creds = json.loads((data_dir / "imds" / "role-credentials.json").read_text())
    return boto3.client("s3", endpoint_url=state.fleet.s3_endpoint, region_name="us-east-1",
                        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds.get("Token"))


def test_a_straggler_upload_of_an_interrupted_run_never_changes_the_complete_backup(dc, tmp_path):
    state, data_dir = dc
    proxy = FaultProxy("127.0.0.1", int(state.fleet.s3_endpoint.rsplit(":", 1)[1])).start()
    prefix = "straggler"
    storage = f"s3://{state.fleet.bucket}/{prefix}?endpoint={proxy.url}"
    argv = [sys.executable, "-m", "br_coordinator.cli", "backup", "full", "--pd", state.pd_address, "-s", storage,
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


PD_OUTAGE_SECONDS = 5.0


def test_a_backup_right_after_a_pd_restart_completes(dc, tmp_path):
    """PD down for a while (stores, agents and br see it fail), restarted on its port: the stores
    and agents pick it up by themselves and the very next backup completes (gRPC's reconnect
    backoff is capped at 2 s, br_common.grpc_util)."""
    state, data_dir = dc
    cluster.stop_process(data_dir, "pd", kill=True)
    time.sleep(PD_OUTAGE_SECONDS)  # clients fail against it meanwhile (their reconnect backoff grows)
    cluster.start_process(data_dir, "pd")
    storage = f"s3://{state.fleet.bucket}/after-pd-restart?endpoint={state.fleet.s3_endpoint}"
    done = subprocess.run([sys.executable, "-m", "br_coordinator.cli", "backup", "full", "--pd", state.pd_address,
                           "-s", storage, "--broker", state.fleet.broker_url, "--log-file", str(tmp_path / "b.log")],
                          capture_output=True, text=True, env=_env(), timeout=180)
    assert done.returncode == 0 and "Backup complete" in done.stdout, done.stdout + done.stderr


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
    done = subprocess.run([sys.executable, "-m", "br_coordinator.cli", "backup", "full", "--pd", state.pd_address,
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


def test_a_backup_right_after_a_store_restart_completes(dc, tmp_path):
    """A store SIGKILLed and restarted on its port: PD, the other stores, its agent and br pick it up
    by themselves, and the very next backup completes."""
    state, data_dir = dc
    store = state.by_role("store")[0].name
    cluster.stop_process(data_dir, store, kill=True)
    time.sleep(5.0)  # clients fail against it meanwhile (their reconnect backoff grows)
    cluster.start_process(data_dir, store)
    storage = f"s3://{state.fleet.bucket}/after-store-restart?endpoint={state.fleet.s3_endpoint}"
    done = subprocess.run([sys.executable, "-m", "br_coordinator.cli", "backup", "full", "--pd", state.pd_address,
                           "-s", storage, "--broker", state.fleet.broker_url, "--log-file", str(tmp_path / "b.log")],
                          capture_output=True, text=True, env=_env(), timeout=180)
    assert done.returncode == 0 and "Backup complete" in done.stdout, done.stdout + done.stderr
