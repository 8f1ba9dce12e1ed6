"""What a BR operator does, over real processes: the README's step-by-step block as written, BR's
flag conventions, log files, Ctrl-C and a rerun after PD's gc_life_time, TLS to PD and TiKV,
the rate limit per store, Celery's own tools and Flower (issue 8).

One devcluster with TLS (`br-devcluster up --tls`, gc_life_time 8 s) serves every test but the
README one, which starts and stops its own as the README does.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from br_common.pd_client import PDClient
from br_devcluster import cluster
from tests.fixtures.br_runner import run_br

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GC_LIFE_TIME = 4.0


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **(extra or {})}


def _read_env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


class Fleet:
    """The shared TLS devcluster: its br.env values, TLS flags and a `br` runner."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.vars = _read_env_file(data_dir / "br.env")
        self.pd = self.vars["PD"]
        tls = data_dir / "tls"
        self.tls = ["--ca", str(tls / "ca.pem"), "--cert", str(tls / "client.pem"), "--key", str(tls / "client-key.pem")]
        self.state = cluster.load_state(data_dir)

    def storage(self, name: str) -> str:
        return f"s3://{self.vars['BUCKET']}/{name}?endpoint={self.vars['S3_ENDPOINT']}"

    def br(self, *args: str, expect: int | None = 0, timeout: float = 120) -> subprocess.CompletedProcess:
        result = run_br(args, env=_env({"BR_BROKER": self.vars["BR_BROKER"]}), timeout=timeout)
        if expect is not None:
            assert result.returncode == expect, f"br {args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        return result

    def popen_br(self, *args: str, log: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "br_coordinator.cli", *args], stdout=log.open("w"),
                                stderr=subprocess.STDOUT, env=_env({"BR_BROKER": self.vars["BR_BROKER"]}))

    def pd_client(self) -> PDClient:
        return PDClient(self.pd, tls=self.state.client_tls())

    def flower(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.vars['FLOWER']}{path}", timeout=10) as reply:
            return reply.read()

    def flower_tasks(self, job_id: str) -> list[dict]:
        tasks = json.loads(self.flower("/api/tasks"))
        return [t for t in tasks.values() if f"job={job_id}" in (t.get("name") or "")]


def _devcluster(data_dir: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "br_devcluster.cli", *args, "--data-dir", str(data_dir)],
                            capture_output=True, text=True, env=_env(), timeout=timeout)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("operator") / "dc"
    try:
        up = _devcluster(data_dir, "up", "--stores", "2", "--regions", "4", "--tls", "--gc-life-time",
                         str(GC_LIFE_TIME))
        assert "--ca " in up.stdout and "br.env" in up.stdout
        _devcluster(data_dir, "load", "--size", "8MB")
        yield Fleet(data_dir)
    finally:
        if (data_dir / cluster.STATE_FILE).exists():
            cluster.down(data_dir)


def _job_id(output: str) -> str:
    return re.search(r"job: ([0-9a-f]{16})", output).group(1)


def _log_path(output: str) -> Path:
    """The default log file, as the summary ("log file: P") or the error line ("(log: P)") names it."""
    return Path(re.search(r"(?:log file: |\(log: )(/tmp/br\.log\.[^\s)]+)", output).group(1))


# --- the README -------------------------------------------------------------------------------------
def test_readme_step_by_step_runs_as_written(tmp_path):
    """The README's block, verbatim but for a smaller --size and --stores and without the pip line (the
    test environment has the project installed), in a fresh directory."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Step by step on the devcluster", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if not line.startswith("pip install")]
    script = "\n".join(lines).replace("--size 64MB", "--size 2MB").replace("--stores 3", "--stores 2")
    assert "br backup full" in script and "br-devcluster down" in script
    try:
        env = {k: v for k, v in _env().items() if k not in ("BR_BROKER", "BR_DEVCLUSTER_DIR")}
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                                text=True, env=env, timeout=240)
    finally:
        if (tmp_path / ".devcluster" / cluster.STATE_FILE).exists():
            cluster.down(tmp_path / ".devcluster")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Backup complete" in result.stdout
    assert "jobs running or resumable: none" in result.stdout
    assert re.search(r"br-agent-\d+-store\d+@\S+: OK", result.stdout)  # celery status
    assert "Traceback" not in result.stderr


# --- BR's flags ---------------------------------------------------------------------------------------
def test_root_flags_pd_list_default_log_file_and_tls(fleet):
    # global flags before the verb, a PD list whose first entry is dead, TLS, no --log-file
    backup = fleet.br("--pd", f"127.0.0.1:1,{fleet.pd}", *fleet.tls, "backup", "raw", "-s", fleet.storage("flags"))
    assert "Backup complete" in backup.stdout
    log_file = _log_path(backup.stdout)
    assert str(log_file).startswith("/tmp/br.log.")
    text = log_file.read_text()
    assert "br-fleet " in text and "arguments: br --pd" in text and "summary: Backup complete" in text
    assert re.search(r"\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d\d:\d\d\]", text)  # time with zone
    assert re.search(r"backup_ts: \d+ \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d\)", backup.stdout)

    # the same path again: refused, and the log file ends with that error
    again = fleet.br("backup", "raw", "--pd", fleet.pd, *fleet.tls, "-s", fleet.storage("flags"), "--log-format",
                     "json", expect=1)
    assert again.stderr.strip().splitlines()[-1].startswith("br: error:") and "complete backup" in again.stderr
    entries = [json.loads(line) for line in _log_path(again.stderr).read_text().splitlines()]
    assert entries[0]["message"].startswith("br-fleet ") and "br: error:" in entries[-1]["message"]
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)

    # without TLS flags: one line that says what to do
    plain = fleet.br("backup", "raw", "--pd", fleet.pd, "-s", fleet.storage("plain"), expect=1)
    assert "--ca/--cert/--key" in plain.stderr.strip().splitlines()[-1]


def test_flags_are_never_abbreviated_and_bad_values_are_one_line(fleet):
    for argv in (["backup", "full", "--pd", fleet.pd, "-s", fleet.storage("x"), "--check=false"],
                 ["backup", "full", "--stor", fleet.storage("x")],
                 ["backup", "full", "--pd", "127.0.0.1:99999", "-s", fleet.storage("x")],
                 ["backup", "full", "--ratelimit", str(1 << 70), "-s", fleet.storage("x")],
                 ["restore", "full", "--concurrency", str(1 << 32), "-s", fleet.storage("x")],
                 ["backup", "full", "--compression-level", str(1 << 31), "-s", fleet.storage("x")]):
        result = fleet.br(*argv, expect=2)
        assert re.match(r"br( backup full| restore full)?: error: ", result.stderr.strip().splitlines()[-1]), \
            result.stderr
    assert "allowed 1 to 1024" in result.stderr or "allowed -131072 to 22" in result.stderr
    no_dir = fleet.br("backup", "raw", "--pd", fleet.pd, "-s", fleet.storage("x"), "--log-file",
                      "/nonexistent-dir/b.log", expect=1)
    assert no_dir.stderr == ("br: error: cannot open the log file /nonexistent-dir/b.log: No such file or directory; "
                             "create the directory /nonexistent-dir first, or choose another --log-file\n")
    future = fleet.br("backup", "raw", "--pd", fleet.pd, *fleet.tls, "-s", fleet.storage("future"),
                      "--backupts", str(int(time.time() * 1000 + 3_600_000) << 18), expect=1)
    assert "after PD's current time" in future.stderr
    helps = fleet.br("--help").stdout
    assert "Exit status:" in helps and "BR_SIGNING_KEY" in helps and "130" in helps
    assert "BR's default is true" in " ".join(fleet.br("backup", "full", "--help").stdout.split())


def test_redact_info_log_hides_keys(fleet, tmp_path):
    log_file = tmp_path / "redacted.log"
    fleet.br("backup", "raw", "--pd", fleet.pd, *fleet.tls, "-s", fleet.storage("redact"), "--start", "40",
             "--end", "80", "--redact-info-log", "--log-file", str(log_file), "-L", "debug")
    text = log_file.read_text()
    assert "[?..?)" in text and "[40..80)" not in text and "--start '?'" in text and "--start 40" not in text


# --- Ctrl-C, GC and resume --------------------------------------------------------------------------
def test_ctrl_c_then_rerun_after_gc_life_time_resumes(fleet, tmp_path):
    storage = fleet.storage("interrupted")
    args = ["backup", "raw", "--pd", fleet.pd, *fleet.tls, "-s", storage, "--ratelimit", "1",
            "--log-file", str(tmp_path / "first.log")]
    first = fleet.popen_br(*args, log=tmp_path / "first.out")
    _wait_for(lambda: (tmp_path / "first.log").exists() and "backup job" in (tmp_path / "first.log").read_text(), 30)
    job_id = re.search(r"backup job ([0-9a-f]{16})", (tmp_path / "first.log").read_text()).group(1)
    # Ctrl-C while the stores are still writing their first ranges (2 MB each at 1 MiB/s): the agents
    # notice the cancellation before uploading them
    _wait_for(lambda: any(t["state"] == "STARTED" and t["name"].startswith("backup job=")
                          for t in fleet.flower_tasks(job_id)), 30)
    first.send_signal(signal.SIGINT)
    assert first.wait(30) == 130
    out = (tmp_path / "first.out").read_text()
    assert "rerun the same command to resume" in out

    status = fleet.br("fleet", "status", "--pd", fleet.pd, *fleet.tls).stdout
    assert f"job {job_id} backup" in status and "interrupted" in status and "GC safe point held" in status

    # Flower: a task the interruption withdrew ends REVOKED, one that was past its last upload
    # SUCCESS, none FAILURE (a withdrawn task always ends REVOKED: test_reliability's replay)
    _wait_for(lambda: all(t["state"] != "STARTED" for t in fleet.flower_tasks(job_id)), 30)
    states = {t["state"] for t in fleet.flower_tasks(job_id)}
    assert states and states <= {"SUCCESS", "REVOKED"}, states

    time.sleep(GC_LIFE_TIME + 2)  # past gc_life_time: without the kept safe point the rerun is refused
    with fleet.pd_client() as pd:
        backup_ts = int(re.search(r"at ts (\d+)", (tmp_path / "first.log").read_text()).group(1))
        assert pd.gc_safe_point() < backup_ts
    rerun = fleet.br(*args[:-2], "--ratelimit", "0", timeout=180)
    assert "Backup complete (resumed)" in rerun.stdout
    assert "jobs running or resumable: none" in fleet.br("fleet", "status", "--pd", fleet.pd, *fleet.tls).stdout


def test_abandon_removes_the_safe_point_and_a_rerun_starts_over(fleet, tmp_path):
    storage = fleet.storage("abandoned")
    args = ["backup", "raw", "--pd", fleet.pd, *fleet.tls, "-s", storage, "--ratelimit", "1"]
    first = fleet.popen_br(*args, "--log-file", str(tmp_path / "b.log"), log=tmp_path / "b.out")
    _wait_for(lambda: (tmp_path / "b.log").exists() and "registered service GC" in (tmp_path / "b.log").read_text(),
              30)
    first.send_signal(signal.SIGINT)
    assert first.wait(30) == 130
    log_text = (tmp_path / "b.log").read_text()
    job_id = re.search(r"backup job ([0-9a-f]{16})", log_text).group(1)
    first_ts = int(re.search(r"at ts (\d+)", log_text).group(1))
    with fleet.pd_client() as pd:
        assert pd.update_service_gc_safe_point("probe", 60, first_ts) == first_ts - 1  # ours holds GC back
    done = fleet.br("fleet", "abandon", "--pd", fleet.pd, *fleet.tls, "--job", job_id)
    assert "abandoned" in done.stdout
    with fleet.pd_client() as pd:
        assert pd.update_service_gc_safe_point("probe2", 60, first_ts) >= first_ts  # ours is gone
        pd.update_service_gc_safe_point("probe2", 0, 0)
        pd.update_service_gc_safe_point("probe", 0, 0)
    rerun = fleet.br(*args[:-2], "--log-file", str(tmp_path / "c.log"), timeout=180)
    assert "Backup complete" in rerun.stdout
    assert int(re.search(r"backup_ts: (\d+)", rerun.stdout).group(1)) > first_ts  # started over


# --- rate limit ---------------------------------------------------------------------------------------
def test_ratelimit_is_one_budget_per_store_whatever_the_concurrency(fleet):
    """--ratelimit 4 with --concurrency 4: the tasks carry the store's budget (one stream per agent,
    one token bucket shared by all transfers of its S3 manager) and TiKV's per-request limit; the
    figures against the asked rate are measured by bench/ratelimit.py, not asserted here."""
    backup = fleet.br("backup", "raw", "--pd", fleet.pd, *fleet.tls, "-s", fleet.storage("limited"),
                      "--ratelimit", "4", "--concurrency", "4", timeout=180)
    job_id = _job_id(backup.stdout)
    budgets = {(t["args"].count("rate_limit=4194304"), t["args"].count("store_budget=4194304"))
               for t in fleet.flower_tasks(job_id) if t["name"].startswith("backup ")}
    assert budgets == {(1, 1)}, budgets  # 4 MiB/s: the agent's stream and each request


# --- Celery and Flower --------------------------------------------------------------------------------
def test_celery_tools_and_agent_flags(fleet):
    env = _env({"BR_BROKER": fleet.vars["BR_BROKER"]})
    with fleet.pd_client() as pd:
        cluster_id = pd.cluster_id
    status = subprocess.run([str(BIN / "celery"), "-A", "br_common.fleet.app", "status"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert status.returncode == 0, status.stderr
    names = set(re.findall(r"(br-agent-\d+-store\d+)@", status.stdout))
    assert names == {f"br-agent-{cluster_id}-store{s}" for s in (1, 2)}
    queues = subprocess.run([str(BIN / "celery"), "-A", "br_common.fleet.app", "inspect", "active_queues"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert f"br.{cluster_id}.store.1" in queues.stdout and f"br.{cluster_id}.storage" in queues.stdout
    helps = subprocess.run([sys.executable, "-m", "br_agent", "--help"], capture_output=True, text=True, env=env)
    for flag in ("-l LEVEL, --loglevel", "-c N, --concurrency", "-n NAME, --hostname", "--ca FILE"):
        assert flag in helps.stdout
    # process names match the store ids PD gave
    by_address = {e.address: e.name for e in fleet.state.by_role("store")}
    with fleet.pd_client() as pd:
        assert {by_address[s.address] for s in pd.stores()} == {f"store-{s.id}" for s in pd.stores()}


def test_flower_names_every_task_and_keeps_metrics_bounded(fleet):
    for n in range(3):
        fleet.br("backup", "raw", "--pd", fleet.pd, *fleet.tls, "-s", fleet.storage(f"flower-{n}"))
    time.sleep(1.5)  # the last events reach Flower
    tasks = json.loads(fleet.flower("/api/tasks")).values()
    assert tasks and all(" job=" in (t.get("name") or "") for t in tasks), \
        [t.get("name") for t in tasks if " job=" not in (t.get("name") or "")]
    metrics = fleet.flower("/metrics").decode()
    labels = set(re.findall(r'flower_events_total\{task="([^"]*)"', metrics))
    assert labels and labels <= {"backup", "backupmeta", "lock", "other"}, labels
    workers = set(re.findall(r'flower_events_total\{[^}]*worker="([^"]*)"', metrics))
    assert not any(w.startswith("gen") for w in workers), workers
    broker_page = fleet.flower("/broker").decode()
    with fleet.pd_client() as pd:
        assert f"br.{pd.cluster_id}.store.1" in broker_page


def _wait_for(predicate, timeout: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")
