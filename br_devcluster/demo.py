"""The README's first command: the whole round trip on one machine.

A source devcluster (with Redis, SeaweedFS, IMDS, agents and Flower) is loaded with generated
data in transactions and backed up with `br backup full` (with --raw: raw KV, `br backup raw`) to
S3; a second, empty devcluster with another store count (its own Redis and agents, the same S3
server) is restored with `br restore full`; then both clusters' checksums (the Coprocessor
checksum at the backup ts and now) are shown side by side. Everything started is stopped at the end
unless --keep is given. `br` runs as a subprocess, exactly as an operator would run it.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from br_common.checksum import Checksum
from br_common.gc_safe_point import StaleReadError, require_after_safe_point
from br_common.pd_client import PDClient, PDError
from br_common.tikv_client import RawKVError
from br_common.txn_checksum import TxnChecksum
from br_devcluster import cluster, fleet
from br_devcluster.cluster import ClusterConfig, ClusterError, ClusterState
from br_devcluster.load import parse_size
from br_devcluster.snapshot_kv import SnapshotKV

console = Console(highlight=False, soft_wrap=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="demo.sh",
        description="Back up a devcluster loaded in transactions to a local S3 server with `br backup full`, "
                    "restore it into a fresh cluster with a different store count with `br restore full`, and "
                    "compare the Coprocessor checksums (--raw: raw KV, `br backup raw`, RawChecksum).")
    # 64MB: a quick round trip; the stores scan linearly (bench/txn_vs_raw.py: 1GB backs up in ~40 s)
    parser.add_argument("--size", type=parse_size, default=parse_size("64MB"),
                        help="data to load into the source cluster (default 64MB; units KB/MB/GB or KiB/MiB/GiB)")
    parser.add_argument("--source-stores", type=int, default=3, help="stores of the source cluster (default 3)")
    parser.add_argument("--target-stores", type=int, default=4, help="stores of the target cluster (default 4)")
    parser.add_argument("--target-replicas", type=int, default=1, help="replicas in the target (default 1)")
    parser.add_argument("--ratelimit", type=int, default=0, help="br --ratelimit, MiB/s per store (default: none)")
    parser.add_argument("--work-dir", type=Path, default=Path(".demo"),
                        help="where both clusters keep data and logs (default ./.demo; emptied first)")
    parser.add_argument("--keep", action="store_true", help="leave both clusters running at the end")
    parser.add_argument("--raw", action="store_true", help="round-trip raw KV instead of transactional data")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work_dir.resolve()
    dirs = [work / "source", work / "target"]
    try:
        return run(args, work, dirs)
    except (ClusterError, PDError, RawKVError, DemoError) as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    finally:
        if not args.keep:
            for data_dir in dirs:
                if cluster.load_state(data_dir) is not None:
                    cluster.down(data_dir)


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and where its log is."""


def run(args: argparse.Namespace, work: Path, dirs: list[Path]) -> int:
    source_dir, target_dir = dirs
    _fresh(work, dirs)
    step("1/5", f"start the source cluster: {args.source_stores} stores, Redis, S3, IMDS, agents, Flower")
    source = _up(source_dir, ClusterConfig(stores=args.source_stores, regions=8), fleet.FleetOptions())
    step("2/5", f"load {args.size / 1e9:.2f} GB of generated data" + (" (raw KV)" if args.raw else " in transactions"))
    _run(["br-devcluster", "load", "--pd", source.pd_address, "--size", str(args.size),
          *([] if args.raw else ["--txn"])])
    assert source.fleet is not None
    storage = f"s3://{source.fleet.bucket}/demo-{time.strftime('%Y%m%d-%H%M%S')}?endpoint={source.fleet.s3_endpoint}"
    step("3/5", "back up with br (agents upload with their instance-profile credentials)")
    backup_log = work / "backup.log"
    _run(["br", "backup", "raw" if args.raw else "full", "--pd", source.pd_address, "--storage", storage, "--broker",
          source.fleet.broker_url, *_ratelimit(args), "--log-file", str(backup_log)])
    backup_ts = _backup_ts(backup_log)
    step("4/5", f"start an empty target cluster: {args.target_stores} stores, {args.target_replicas} replica(s)")
    target = _up(target_dir, ClusterConfig(stores=args.target_stores, replicas=args.target_replicas, regions=1),
                 fleet.FleetOptions(s3_endpoint=source.fleet.s3_endpoint, bucket=source.fleet.bucket,
                                    credentials_file=source_dir / "imds" / "role-credentials.json"))
    step("5/5", "restore with br into the target")
    assert target.fleet is not None
    _run(["br", "restore", "full", "--pd", target.pd_address, "--storage", storage, "--broker",
          target.fleet.broker_url, *_ratelimit(args), "--log-file", str(work / "restore.log")])
    return _compare(source, target, backup_ts, args)


def _ratelimit(args: argparse.Namespace) -> list[str]:
    return ["--ratelimit", str(args.ratelimit)] if args.ratelimit else []


def step(number: str, text: str) -> None:
    console.print(f"\n[bold]== {number} {text}[/bold]")


def _fresh(work: Path, dirs: list[Path]) -> None:
    """Stop what an earlier run left and start from empty data dirs."""
    for data_dir in dirs:
        if cluster.load_state(data_dir) is not None:
            cluster.down(data_dir)
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)


def _up(data_dir: Path, config: ClusterConfig, options: fleet.FleetOptions) -> ClusterState:
    state = cluster.up(data_dir, config).state
    fleet.start_fleet(data_dir, state, options)
    state = cluster.load_state(data_dir)
    assert state is not None and state.fleet is not None
    console.print(f"   PD {state.pd_address}, broker {state.fleet.broker_url}, S3 {state.fleet.s3_endpoint}"
                  + (f", Flower {state.fleet.flower_url}" if state.fleet.flower_url else ""))
    return state


# run as `python -m` of this interpreter, so the demo works whether or not the scripts are on PATH
_MODULES = {"br": "br_coordinator", "br-devcluster": "br_devcluster.cli"}


def _run(command: list[str]) -> None:
    console.print(f"   $ {shlex.join(command)}")
    result = subprocess.run([sys.executable, "-m", _MODULES[command[0]], *command[1:]])
    if result.returncode != 0:
        raise DemoError(f"`{command[0]} {command[1]}` exited with {result.returncode}")


def _backup_ts(log_file: Path) -> int:
    """The backup_ts br logged; the source is compared with the target at exactly that ts."""
    for line in log_file.read_text().splitlines():
        if " at ts " in line:
            return int(line.split(" at ts ", 1)[1].split()[0])
    raise DemoError(f"no backup ts in {log_file}")


def _checksum(pd_address: str, ts: int | None, raw: bool) -> Checksum:
    with PDClient(pd_address) as pd:
        if ts is not None:  # the stores answer below the GC safe point with what is left, as TiKV does
            try:
                require_after_safe_point(pd, ts, "backup ts", "the source cannot be compared at it any more")
            except StaleReadError as exc:
                raise DemoError(str(exc)) from None
        read_ts = ts if ts is not None else pd.tso()
        if raw:
            return SnapshotKV(pd).checksum(ts=read_ts)
        with TxnChecksum(pd) as client:  # the Coprocessor checksum, as TiDB's ADMIN CHECKSUM
            return client.checksum_at(b"", b"", read_ts)


def _compare(source: ClusterState, target: ClusterState, backup_ts: int, args: argparse.Namespace) -> int:
    left, right = _checksum(source.pd_address, backup_ts, args.raw), _checksum(target.pd_address, None, args.raw)
    table = Table(title="checksums")
    table.add_column("")
    table.add_column(f"source at backup_ts {backup_ts}")
    table.add_column("restored target")
    for field in ("crc64xor", "total_kvs", "total_bytes"):
        a, b = getattr(left, field), getattr(right, field)
        show = (lambda v: f"{v:#018x}") if field == "crc64xor" else str
        table.add_row(field, show(a), show(b))
    console.print(table)
    if left != right:
        console.print("[red]MISMATCH: the restored cluster differs from the source at backup_ts[/red]")
        return 1
    console.print("[green]match: the restored cluster equals the source at backup_ts[/green]")
    if args.keep:
        console.print(f"both clusters keep running: source PD {source.pd_address}, target PD {target.pd_address}; "
                      "stop them with `br-devcluster down --data-dir DIR`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
