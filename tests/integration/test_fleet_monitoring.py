"""Watching the fleet over real processes: Flower's API during a backup, the agents' Prometheus
endpoints, Flower's dashboard in headless Chromium, the allowlist refusing tasks, and
`br fleet status` (with one agent stopped). One devcluster, Redis, Flower and agent per store."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from br_common import procs
from br_common.fleet import messages as m
from br_common.fleet import redis_client
from br_common.fleet.app import make_app, send
from br_common.fleet.jobs import JobSpec, JobStore, Lease
from br_common.fleet.queues import storage_queue, store_queue
from br_devcluster import cluster
from br_devcluster.load import KeyGen, LoadSpec
from br_devcluster.services import start_flower, start_redis
from tests.fixtures import br_runner
from tests.fixtures.devcluster import DevCluster
from tests.integration.test_backup_support import REPO, AgentFleet, read_backupmeta, run_br, s3_admin, start_br

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KEYS = 40_000  # ~8.6 MB over 8 regions: with --ratelimit 1 the backup runs for several seconds
GEN = KeyGen(LoadSpec(keys=KEYS, value_size=200, seed=5))
ALLOWED_PREFIX = "mon"
ACCESS_KEY, SECRET_KEY = "AKIAMONITORING0TEST1", "Mon1tor/Secret+Key=never-shown"
ARTIFACTS = REPO / "test-artifacts"


class Env:
    def __init__(self, dc: DevCluster, broker: str, agents: AgentFleet, flower: str, s3, work: Path) -> None:  # noqa: ANN001
        self.dc, self.broker, self.agents, self.flower, self.s3, self.work = dc, broker, agents, flower, s3, work

    def url(self, prefix: str, **params: str) -> str:
        return self.s3.url(prefix, with_keys=False, **params)

    def allowed(self) -> str:
        return self.s3.url(ALLOWED_PREFIX, with_keys=False)

    def api(self, path: str) -> dict:
        with urllib.request.urlopen(self.flower + path, timeout=10) as answer:
            return json.loads(answer.read())

    def text(self, url: str) -> str:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.read().decode()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, seaweedfs_s3) -> Iterator[Env]:  # noqa: ANN001
    work = tmp_path_factory.mktemp("monitoring")
    redis = start_redis(work / "redis")
    data_dir = work / "cluster"
    agents = flower = None
    try:
        state = cluster.up(data_dir, cluster.ClusterConfig(stores=3, replicas=1, regions=8)).state
        dc = DevCluster(data_dir, state)
        dc.kv.batch_put(GEN.pairs(0, KEYS))
        host_env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        allowed = seaweedfs_s3.url(ALLOWED_PREFIX, with_keys=False)
        agents = AgentFleet(dc, redis.url, work / "agents", env=host_env, metrics=True,
                            extra_args=["--allow-destination", allowed]).start_all()
        flower = start_flower(work / "flower", redis.url)
        yield Env(dc, redis.url, agents, flower.url, seaweedfs_s3, work)
        dc.kv.close()
        dc.pd.close()
    finally:
        if flower is not None:
            flower.stop()
        if agents is not None:
            agents.stop_all()
        if (data_dir / cluster.STATE_FILE).exists():
            cluster.down(data_dir)
        redis.stop()


def _wait_for_workers(env: Env, count: int) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = env.api("/api/workers?refresh=1")
        if len(workers) >= count:
            return workers
        time.sleep(0.5)
    raise AssertionError(f"Flower lists {len(workers)} of {count} agents")


def _flower_caught_up(env: Env, job: str) -> dict:
    """Flower's task list once it has processed the job's last events (they arrive asynchronously)."""
    deadline = time.monotonic() + 30
    while True:
        tasks = env.api("/api/tasks")
        if any(t["name"].startswith(f"backupmeta job={job}") and t["state"] == "SUCCESS" for t in tasks.values()) \
                or time.monotonic() > deadline:
            return tasks
        time.sleep(0.2)


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:{{(.*)}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_flower_shows_the_running_backup_by_job_store_range_and_bytes_without_secrets(env: Env) -> None:
    workers = _wait_for_workers(env, 3)
    assert {re.sub(r"^br-agent-\d+-", "br-agent-", name.split("@")[0]) for name in workers} == \
        {f"br-agent-store{s}" for s in env.agents.procs}  # br-agent-<cluster id>-store<id>
    prefix = f"{ALLOWED_PREFIX}/flower-{uuid.uuid4().hex[:6]}"
    keyed = env.s3.url(prefix, with_keys=False) + f"&access-key={ACCESS_KEY}&secret-access-key={SECRET_KEY}"
    proc = start_br("backup", "raw", "--pd", env.dc.pd_address, "-s", keyed, "-c", "--ratelimit", "1",
                    broker=env.broker, log_path=env.work / "br-flower.out")
    running: dict[str, dict] = {}
    try:
        while proc.poll() is None:  # read Flower's API while the backup runs
            tasks = env.api("/api/tasks")
            running |= {tid: t for tid, t in tasks.items() if t["state"] == "STARTED"}
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, (env.work / "br-flower.out").read_text()[-3000:]
    assert any(t["name"].startswith("backup job=") for t in running.values()), running
    job = re.search(r"job: (\w+)", (env.work / "br-flower.out").read_text()).group(1)
    tasks = _flower_caught_up(env, job)
    everything = json.dumps(tasks) + json.dumps(env.api("/api/workers"))
    assert ACCESS_KEY not in everything and SECRET_KEY not in everything and "secret-access-key" not in everything

    mine = [t for t in tasks.values() if f"job={job}" in t["name"]]
    ranges = [t for t in mine if t["name"].startswith("backup ")]
    assert ranges and all(re.fullmatch(rf"backup job={job} store=\d \[[0-9a-f-inf]*\.\.[0-9a-f+inf]*\) \d+ regions?",
                                       t["name"]) for t in ranges), [t["name"] for t in ranges]
    for task in ranges:
        store = re.search(r"store=(\d)", task["name"]).group(1)
        assert re.match(rf"br-agent-\d+-store{store}@", task["worker"]) and f"store_id={store}" in task["args"]
        assert f"storage=s3://{env.s3.bucket}/{prefix}" in task["args"] and "(keys sealed for 3 agents)" in task["args"]
    done = [t for t in ranges if t["state"] == "SUCCESS"]
    assert sum(int(re.search(r"'bytes_uploaded': (\d+)", t["result"]).group(1)) for t in done) > 0
    assert any(re.fullmatch(rf"backupmeta job={job} [\d.]+(B|KiB) s3://\S+", t["name"]) for t in mine), \
        [t["name"] for t in mine]
    assert any(t["name"].startswith(f"lock job={job} ") for t in mine)

    # Prometheus: Flower's own endpoint and each agent's
    assert "flower_events_total" in env.text(env.flower + "/metrics")
    meta = read_backupmeta(s3_admin(env.s3.endpoint), env.s3.bucket, prefix)
    uploaded = 0.0
    for store_id, port in env.agents.metrics_ports.items():
        text = env.text(f"http://127.0.0.1:{port}/metrics")
        uploaded += _metric(text, "br_agent_bytes_uploaded_total", store=str(store_id))
        assert _metric(text, "br_agent_task_duration_seconds_count", store=str(store_id), task="br.backup.range",
                       outcome="success") >= 1
        assert "br_agent_throttled_seconds_total" in text and "br_agent_s3_retries_total" in text
    assert uploaded >= meta.backup_size > 0


def test_agents_refuse_destinations_outside_their_allowlist_with_one_line(env: Env) -> None:
    elsewhere = env.url(f"other-{uuid.uuid4().hex[:6]}")
    refused = run_br("backup", "raw", "--pd", env.dc.pd_address, "-s", elsewhere, broker=env.broker)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    other = elsewhere.split("?")[0]
    assert re.fullmatch(rf"br: error: agent of store \d refuses {re.escape(other)}\?endpoint=\S+: not in its "
                        rf"allowed_destinations \[\"{re.escape(env.allowed())}\"\]( \(log: \S+\))?", line), line

    # straight to the agents, past br's early check: a storage task, and a range task of a live job
    app = make_app(env.broker)
    evil = f"s3://{env.s3.bucket}/{ALLOWED_PREFIX}/x?endpoint=http://127.0.0.1:9"  # allowed path, another server
    lock = send(app, m.ACQUIRE_LOCK, m.AcquireLockTask(job_id="j", storage=m.StorageSpec(url=evil), lock_body="{}"),
                queue=storage_queue(env.dc.cluster_id))
    client = redis_client(env.broker)
    spec = JobSpec(kind="backup", cluster_id=env.dc.cluster_id, storage_url=elsewhere, ranges=[m.KeyRange()])
    jobs = JobStore(client, spec.job_id())
    jobs.create(spec)
    lease = Lease(client, jobs.lease_key)
    assert lease.acquire()
    store_id = min(env.agents.procs)
    task = m.BackupRangeTask(job_id=jobs.job_id, attempt=uuid.uuid4().hex[:16], cluster_id=env.dc.cluster_id,
                             store_id=store_id, range=m.KeyRange(), backup_ts=env.dc.pd.tso(),
                             storage=m.StorageSpec(url=elsewhere))
    backup = send(app, m.BACKUP_RANGE, task, queue=store_queue(env.dc.cluster_id, store_id))
    try:
        for result, url in ((lock, evil), (backup, elsewhere)):
            result.get(timeout=60, propagate=False)
            assert result.state == "FAILURE" and str(result.result).startswith("agent of store ") \
                and f"refuses {url}: not in its allowed_destinations" in str(result.result)
    finally:
        lease.release()
        jobs.finish("failed", "test")
    assert not list(s3_admin(env.s3.endpoint).list_objects_v2(Bucket=env.s3.bucket, Prefix=elsewhere.split("/")[3])
                    .get("Contents", []))
    text = env.text(f"http://127.0.0.1:{env.agents.metrics_ports[store_id]}/metrics")
    assert _metric(text, "br_agent_task_duration_seconds_count", task="br.backup.range", outcome="refused") == 1
    assert "refused a task: agent of store" in env.agents.log(store_id)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it)")
    return found


def _browse(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=8000"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120)


def test_flower_dashboard_in_headless_chromium_shows_every_agent_online(env: Env, tmp_path: Path) -> None:
    binary = _chromium()
    _wait_for_workers(env, 3)
    page = env.flower + "/workers"
    dom = _browse(binary, tmp_path / "profile", "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for store_id in env.agents.procs:
        row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*br-agent-\d+-store{store_id}@(?:(?!</tr>).)*</tr>", dom.stdout, re.S)
        assert row, f"agent of store {store_id} not on {page}"
        assert re.search(r">\s*Online\s*<", row.group(0)), row.group(0)[:1000]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "flower-workers.png"
    shot.unlink(missing_ok=True)
    taken = _browse(binary, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,900", page)
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]


def _status(env: Env, *extra: str, pd: str | None = None, broker: str | None = None) -> subprocess.CompletedProcess:
    return br_runner.run_br(["fleet", "status", "--pd", pd or env.dc.pd_address, "--broker", broker or env.broker,
                             *extra])


def test_fleet_status_shows_every_agent_and_flags_a_stopped_one(env: Env) -> None:
    ok = _status(env)
    assert ok.returncode == 0, ok.stderr
    rows = {int(line.split()[0]): line for line in ok.stdout.splitlines() if line[:1].isdigit()}
    assert sorted(rows) == sorted(env.agents.procs)
    for store_id, line in rows.items():
        pid = env.agents.procs[store_id].pid
        assert f"/{pid} " in line and " online " in line and line.endswith(env.allowed())
        assert f"http://127.0.0.1:{env.agents.metrics_ports[store_id]}/metrics" in line
    assert f"shared queue br.{env.dc.cluster_id}.storage: 0 waiting" in ok.stdout

    stopped = max(env.agents.procs)
    procs.stop_pid(env.agents.procs.pop(stopped).pid)  # a clean stop withdraws the heartbeat at once
    degraded = _status(env)
    assert degraded.returncode == 3, degraded.stdout + degraded.stderr
    row = next(line for line in degraded.stdout.splitlines() if line.startswith(f"{stopped} "))
    assert "NO AGENT" in row
    assert f"store {stopped} ({env.dc.store_addresses()[stopped]}) has NO ONLINE br-agent" in degraded.stdout

    for kwargs, words in (({"pd": "127.0.0.1:1"}, "cannot reach PD at 127.0.0.1:1"),
                          ({"broker": "redis://127.0.0.1:1/0"}, "cannot reach the broker")):
        failed = _status(env, **kwargs)
        assert failed.returncode == 1 and failed.stdout == "" and "Traceback" not in failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1 and words in failed.stderr, failed.stderr
