"""`--ratelimit N` against the asked N MiB/s per store, with an unlimited run as the baseline.

    python bench/ratelimit.py [--size 768MB --stores 2 --regions 64 --rates 8,32]

Starts SeaweedFS, Redis, a devcluster and one br-agent per store, loads the data, then runs
`br backup raw` once without a limit and once per asked rate (each to a new prefix, with the
default --concurrency 4), and prints for every store the bytes it backed up (SST bytes, what
the limit meters) as a rate, and its ratio to the asked rate, twice:
  while transferring: from br's "backup job ... at ts" log line (planning done, tasks about to
                      go out) to "all ranges backed up": what the limit governs;
  over the whole command: also start-up, planning, the checksum and the commit (fixed costs
                      that only weigh on a short run).
A ratio above 1.0 means the limit leaked.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench_setup import BUCKET, loaded_cluster, read_meta, run_br

from br_devcluster import cluster

MiB = 1024 * 1024
JOB_START, JOB_BACKED_UP = "[br.backup] backup job ", "[br.backup] all ranges backed up"


@dataclass
class Measured:
    elapsed: float  # the whole command
    transfer: float  # from the job's start (planned, tasks about to go out) to its last range backed up
    per_store: dict[str, int]  # SST bytes


def _backup(state: cluster.ClusterState, broker: str, endpoint: str, work: Path, rate: int) -> Measured:
    prefix = f"ratelimit-{rate}-{int(time.time())}"
    args = ["backup", "raw", "--pd", state.pd_address, "-s", f"s3://{BUCKET}/{prefix}?endpoint={endpoint}"]
    log_file = work / f"br-{rate}.log"
    elapsed, _ = run_br(*args, *(["--ratelimit", str(rate)] if rate else []), broker=broker, log_file=log_file)
    per_store: dict[str, int] = defaultdict(int)
    for f in read_meta(endpoint, prefix).files:
        per_store[f.name.split("/", 1)[0]] += f.size
    return Measured(elapsed, _transfer_seconds(log_file), dict(sorted(per_store.items())))


def _transfer_seconds(log_file: Path) -> float:
    """Seconds between br's "backup job ... at ts" and "all ranges backed up" log lines."""
    times = {}
    for line in log_file.read_text().splitlines():
        for mark in (JOB_START, JOB_BACKED_UP):
            if mark in line:
                times[mark] = datetime.strptime(line[1:24], "%Y/%m/%d %H:%M:%S.%f")
    return (times[JOB_BACKED_UP] - times[JOB_START]).total_seconds()


def _shown(measured: Measured, rate: int, seconds: float) -> str:
    return ", ".join(f"store {s}: {n / MiB / seconds:.1f} MiB/s" + (f" ({n / MiB / seconds / rate:.2f}x)" if rate else "")
                     for s, n in measured.per_store.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="768MB", help="data set size (keys + values)")
    parser.add_argument("--stores", type=int, default=2)
    parser.add_argument("--regions", type=int, default=64)
    parser.add_argument("--rates", default="8,32", help="asked rates, MiB/s per store, comma-separated")
    args = parser.parse_args()
    with loaded_cluster("ratelimit", args.stores, args.regions, args.size, 1024) as bench:
        for rate in [0, *(int(r) for r in args.rates.split(","))]:
            measured = _backup(bench.state, bench.broker, bench.endpoint, bench.work, rate)
            asked = f"--ratelimit {rate}" if rate else "no limit (baseline)"
            print(f"{asked}:\n  while transferring ({measured.transfer:.1f} s): "
                  f"{_shown(measured, rate, measured.transfer)}\n"
                  f"  over the whole command ({measured.elapsed:.1f} s): {_shown(measured, rate, measured.elapsed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
