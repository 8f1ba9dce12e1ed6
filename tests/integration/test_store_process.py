"""The store as a process: CLI errors, waiting for PD, remembering its id, SIGTERM."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from br_common.procs import free_port, pid_alive, spawn, stop_pid, wait_for_port
from tests.integration._store_cluster import HOST, running_cluster, wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("args, message", [
    ([], "required"),
    (["--pd", "nope", "--data-dir", "d", "--host", HOST, "--port", "1"], "--pd"),
    (["--pd", "h:1", "--data-dir", "d", "--host", HOST, "--port", "99999"], "--port"),
    (["--pd", "h:1", "--data-dir", "d", "--host", HOST, "--port", "1", "--gc-interval", "x"], "--gc-interval"),
])
def test_bad_command_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "br_devcluster.store", *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_restart_keeps_id_and_data_and_sigterm_is_clean(tmp_path: Path) -> None:
    with running_cluster(tmp_path, stores=1, regions=2) as cluster:
        [store] = cluster.pd.stores()
        cluster.put(b"kept", b"across restarts")
        entry = cluster.stores[0]
        stop_pid(entry.proc.pid)
        assert entry.proc.wait(timeout=10) == 0  # SIGTERM: clean exit
        assert "stopped" in entry.log.read_text()
        cluster.stores.clear()
        again = cluster.start_store(data_dir=entry.data_dir)  # a new port, same data dir
        wait_until(lambda: cluster.pd.store(store.id).address == again.address, "re-registration")
        assert [s.id for s in cluster.pd.stores()] == [store.id]
        assert cluster.get(b"kept") == b"across restarts"


def test_waits_for_pd(tmp_path: Path) -> None:
    pd_port, store_port = free_port(), free_port()
    store = spawn([sys.executable, "-m", "br_devcluster.store", "--pd", f"{HOST}:{pd_port}", "--data-dir",
                   str(tmp_path / "store"), "--host", HOST, "--port", str(store_port)], tmp_path / "store.log")
    pd = None
    try:
        assert pid_alive(store.pid)
        pd = spawn([sys.executable, "-m", "br_devcluster.pd", "--data-dir", str(tmp_path / "pd"), "--host", HOST,
                    "--port", str(pd_port)], tmp_path / "pd.log")
        wait_for_port(HOST, store_port, proc=store)
        wait_until(lambda: "registered as store" in (tmp_path / "store.log").read_text(), "registration")
    finally:
        stop_pid(store.pid)
        if pd is not None:
            stop_pid(pd.pid)


def test_data_dir_of_another_cluster_is_refused(tmp_path: Path) -> None:
    with running_cluster(tmp_path / "one", stores=1) as cluster:
        data_dir = cluster.stores[0].data_dir
    with running_cluster(tmp_path / "two", stores=1) as other:
        result = subprocess.run([sys.executable, "-m", "br_devcluster.store", "--pd", other.pd_proc.address,
                                 "--data-dir", str(data_dir), "--host", HOST, "--port", str(free_port())],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert "belongs to cluster" in result.stderr and "Traceback" not in result.stderr


def test_taken_data_dir_or_port_is_a_clear_error(tmp_path: Path) -> None:
    with running_cluster(tmp_path, stores=1) as cluster:
        running = cluster.stores[0]
        base = [sys.executable, "-m", "br_devcluster.store", "--pd", cluster.pd_proc.address, "--host", HOST]
        cases = [(["--data-dir", str(running.data_dir), "--port", str(free_port())], "cannot open RocksDB"),
                 (["--data-dir", str(tmp_path / "other"), "--port", str(running.port)], "cannot listen")]
        for args, message in cases:
            result = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)
            assert result.returncode == 1
            assert message in result.stderr and "Traceback" not in result.stderr
        assert [s.address for s in cluster.pd.stores()] == [running.address]  # the running store is untouched
