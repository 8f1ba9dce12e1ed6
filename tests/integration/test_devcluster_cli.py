"""`br-devcluster up/status/load/checksum/down` as subprocesses, as a user runs them."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from br_devcluster import cluster
from br_devcluster.load import KeyGen, LoadSpec

pytestmark = pytest.mark.integration


@pytest.fixture
def data_dir(tmp_path):
    """A data dir whose cluster is stopped by PID at teardown, whatever the test did."""
    yield tmp_path / "dc"
    if (tmp_path / "dc" / cluster.STATE_FILE).exists():
        cluster.down(tmp_path / "dc")


def _run(data_dir, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "BR_DEVCLUSTER_DIR": str(data_dir)}  # commands find the cluster without flags
    result = subprocess.run([sys.executable, "-m", "br_devcluster.cli", *args], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == expect, f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def _checksum_fields(out: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def test_up_status_load_checksum_down_restart(data_dir):
    # PD and stores only: `up` with its fleet runs in test_operator_flow (the README's block)
    up = _run(data_dir, "up", "--stores", "2", "--regions", "4", "--no-fleet")
    assert up.stdout.splitlines()[-1].startswith("PD: 127.0.0.1:")
    assert "already running" in _run(data_dir, "up", "--no-fleet").stdout

    status = _run(data_dir, "status").stdout
    assert "regions: 4" in status and status.count("running") >= 3

    load = _run(data_dir, "load", "--keys", "2000", "--value-size", "100", "--seed", "9",
                "--distribution", "sequential", "--writers", "2")
    assert "wrote 2000 keys" in load.stdout
    expected = KeyGen(LoadSpec(keys=2000, value_size=100, seed=9, distribution="sequential")).checksum()
    fields = _checksum_fields(_run(data_dir, "checksum").stdout)
    assert int(fields["crc64xor"], 16) == expected.crc64xor
    assert int(fields["total_kvs"]) == 2000 and int(fields["total_bytes"]) == 2000 * 116
    ts = fields["ts"]

    half = _checksum_fields(_run(data_dir, "checksum", "--end", "8000").stdout)
    assert 0 < int(half["total_kvs"]) < 2000
    assert "sorts before" in _run(data_dir, "checksum", "--start", "ff", "--end", "01", expect=2).stderr

    down = _run(data_dir, "down").stdout
    assert down.count("stopped") >= 3
    assert "NOT RUNNING" in _run(data_dir, "status", expect=1).stdout
    assert "cannot reach PD" in _run(data_dir, "checksum", expect=1).stderr

    restarted = _run(data_dir, "up", "--no-fleet").stdout
    assert "restarted" in restarted and restarted.splitlines()[-1] == up.stdout.splitlines()[-1]
    again = _checksum_fields(_run(data_dir, "checksum", "--ts", ts).stdout)
    assert int(again["crc64xor"], 16) == expected.crc64xor and again["ts"] == ts
    _run(data_dir, "down")


def test_up_on_a_taken_port_fails_clearly_and_leaves_nothing_running(data_dir):
    state = cluster.up(data_dir, cluster.ClusterConfig(stores=1, regions=1)).state
    assert _run(data_dir, "status", "--json").stdout.count('"running": true') == 2
    cluster.down(data_dir)
    with socket.socket() as squatter:  # someone else took PD's port meanwhile
        squatter.bind(("127.0.0.1", state.entry("pd").port))
        squatter.listen()
        failed = _run(data_dir, "up", expect=1)
        assert "port" in failed.stderr and "in use" in failed.stderr
    assert not any(cluster.is_running(e) for e in cluster.load_state(data_dir).processes)
    assert "restarted" in _run(data_dir, "up", "--no-fleet").stdout  # once the port is free again


def test_up_reports_a_process_that_dies_at_start(data_dir):
    state = cluster._new_state(data_dir, cluster.ClusterConfig(stores=1, regions=1))
    state.entry("pd").args = [sys.executable, "-c", "import sys; print('pd: bad state file'); sys.exit(3)"]
    data_dir.mkdir(parents=True)
    cluster.save_state(data_dir, state)
    failed = _run(data_dir, "up", expect=1)
    assert "pd did not start" in failed.stderr and "bad state file" in failed.stderr
    assert not any(cluster.is_running(e) for e in cluster.load_state(data_dir).processes)
