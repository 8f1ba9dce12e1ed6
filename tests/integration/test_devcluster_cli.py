"""`br-devcluster up/status/load/checksum/down` as subprocesses, as a user runs them."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from br_common import procs
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

    # transactional data beside the raw data (short values: the raw default CF holds none of it)
    txn = _run(data_dir, "load", "--txn", "--keys", "500", "--value-size", "64", "--seed", "3",
               "--batch-bytes", "8KiB")
    assert "wrote 500 keys" in txn.stdout and "transactions" in txn.stdout
    txn_expected = KeyGen(LoadSpec(keys=500, value_size=64, seed=3)).checksum()
    txn_fields = _checksum_fields(_run(data_dir, "checksum", "--txn").stdout)
    assert int(txn_fields["crc64xor"], 16) == txn_expected.crc64xor and int(txn_fields["total_kvs"]) == 500
    assert int(_checksum_fields(_run(data_dir, "checksum", "--txn", "--ts", ts).stdout)["total_kvs"]) == 0
    assert int(_checksum_fields(_run(data_dir, "checksum").stdout)["total_kvs"]) == 2000

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


def test_up_failing_on_a_store_port_stops_the_pd_it_started(data_dir):
    state = cluster._new_state(data_dir, cluster.ClusterConfig(stores=1, regions=1))
    data_dir.mkdir(parents=True)
    cluster.save_state(data_dir, state)
    with socket.socket() as squatter:  # PD starts, then store-1's port is taken
        squatter.bind(("127.0.0.1", state.entry("store-1").port))
        squatter.listen()
        failed = _run(data_dir, "up", "--no-fleet", expect=1)
    assert "store-1" in failed.stderr and "in use" in failed.stderr
    assert not any(cluster.is_running(e) for e in cluster.load_state(data_dir).processes)


def test_up_failing_after_pd_stores_and_redis_stops_all_it_started(data_dir, monkeypatch, capsys):
    """A failure after PD, the stores and Redis started (here the IMDS credentials step raises): every
    process this `up` started is stopped and the error is one line; what ran before keeps running, and
    the next `up` starts the fleet afresh."""
    from br_devcluster import cli, fleet  # noqa: PLC0415 - in-process: the fault is injected

    def broken(*_args):
        raise RuntimeError("injected failure")

    redis_pids = []
    start_redis = fleet.start_redis

    def recorded_redis(*args):
        handle = start_redis(*args)
        redis_pids.append(handle.pid)
        return handle

    monkeypatch.setattr(fleet, "start_redis", recorded_redis)
    monkeypatch.setattr(fleet, "_role_credentials", broken)
    argv = ["up", "--stores", "1", "--regions", "1", "--no-flower", "--data-dir", str(data_dir)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err == "br-devcluster up: unexpected RuntimeError: injected failure\n"
    state = cluster.load_state(data_dir)
    assert [e.role for e in state.processes] == ["pd", "store"] and state.fleet is None  # Redis's row dropped
    assert not any(cluster.is_running(e) for e in state.processes)
    assert len(redis_pids) == 1 and not procs.pid_alive(redis_pids[0])

    assert "restarted" in _run(data_dir, "up", "--no-fleet").stdout
    assert cli.main(argv) == 1  # PD and the store were running before this `up`: they stay
    assert all(cluster.is_running(e) for e in cluster.load_state(data_dir).processes)
    assert [e.role for e in cluster.load_state(data_dir).processes] == ["pd", "store"]
    assert len(redis_pids) == 2 and not procs.pid_alive(redis_pids[1])
