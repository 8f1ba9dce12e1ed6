"""Benchmark: `br-devcluster up --stores 3`, `load --size SIZE`, `checksum`, `down` in a temp dir.

Prints wall time of each step and the CPU seconds of the loader, PD and each store, which is
what tells where the time goes on a small machine. Usage: python bench/load_1gb.py [--size 1GB]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from br_devcluster import cluster


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc (clock ticks -> seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def step(data_dir: Path, *args: str) -> float:
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([sys.executable, "-m", "br_devcluster.cli", *args, "--data-dir", str(data_dir)],
                            capture_output=True, text=True)
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if result.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {result.stderr.strip()}")
    print(f"{args[0]:<9} {elapsed:6.1f}s (client cpu {cpu:5.1f}s)  {result.stdout.strip().splitlines()[-1]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GB")
    parser.add_argument("--stores", default="3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="br-bench-") as tmp:
        data_dir = Path(tmp) / "dc"
        try:
            step(data_dir, "up", "--stores", args.stores)
            step(data_dir, "load", "--size", args.size)
            state = cluster.load_state(data_dir)
            for entry in state.processes:
                print(f"  cpu {entry.name:<8} {cpu_seconds(entry.pid):6.1f}s")
            step(data_dir, "checksum")
        finally:
            step(data_dir, "down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
