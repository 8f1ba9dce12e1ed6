"""`--ratelimit N` against the asked N MiB/s per store, with an unlimited run as the baseline.

    python bench/ratelimit.py [--size 192MB --stores 2 --rates 8,32]

Starts SeaweedFS, Redis, a devcluster and one br-agent per store, loads the data, then runs
`br backup raw` once without a limit and once per asked rate (each to a new prefix, with the
default --concurrency 4), and prints for every store the bytes it backed up (SST bytes, what
the limit meters), the rate that makes over the whole command, and its ratio to the asked
rate. The whole command's time includes planning, checksum and the commit, so the measured
rate is a slight underestimate of the transfer's; a ratio above 1.0 means the limit leaked.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

from bench_setup import BUCKET, loaded_cluster, read_meta, run_br

from br_devcluster import cluster

MiB = 1024 * 1024


def _backup(state: cluster.ClusterState, broker: str, endpoint: str, work: Path, rate: int) -> dict[str, float]:
    prefix = f"ratelimit-{rate}-{int(time.time())}"
    args = ["backup", "raw", "--pd", state.pd_address, "-s", f"s3://{BUCKET}/{prefix}?endpoint={endpoint}"]
    elapsed, _ = run_br(*args, *(["--ratelimit", str(rate)] if rate else []), broker=broker,
                        log_file=work / f"br-{rate}.log")
    per_store: dict[str, int] = defaultdict(int)
    for f in read_meta(endpoint, prefix).files:
        per_store[f.name.split("/", 1)[0]] += f.size
    return {store: nbytes / MiB / elapsed for store, nbytes in sorted(per_store.items())} | {"_elapsed": elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="192MB", help="data set size (keys + values)")
    parser.add_argument("--stores", type=int, default=2)
    parser.add_argument("--regions", type=int, default=16)
    parser.add_argument("--rates", default="8,32", help="asked rates, MiB/s per store, comma-separated")
    args = parser.parse_args()
    with loaded_cluster("ratelimit", args.stores, args.regions, args.size, 1024) as bench:
        for rate in [0, *(int(r) for r in args.rates.split(","))]:
            rates = _backup(bench.state, bench.broker, bench.endpoint, bench.work, rate)
            elapsed = rates.pop("_elapsed")
            asked = f"--ratelimit {rate}" if rate else "no limit (baseline)"
            shown = ", ".join(f"store {s}: {r:.1f} MiB/s" + (f" ({r / rate:.2f}x asked)" if rate else "")
                              for s, r in rates.items())
            print(f"{asked}: {elapsed:.1f}s; {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
