"""`br-devcluster`: run a local TiKV-style cluster (PD + stores) and put data in it.

Errors reach the user as one line on stderr: exit code 2 for bad arguments, 1 for anything
that went wrong while doing the work (PD unreachable, a store error, a cluster that won't start).
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

from br_common import key_format
from br_common.gc_safe_point import require_after_safe_point
from br_common.pd_client import PDClient, PDError
from br_common.tikv_client import RawKVClient, RawKVError
from br_devcluster import cluster, fleet
from br_devcluster.tls import tls_flags
from br_devcluster.load import Distribution, KeyGen, LoadSpec, parse_size, run_load
from br_devcluster.snapshot_kv import SnapshotKV
from br_devcluster.txn_kv import TxnKV



class UsageError(ValueError):
    """Bad arguments: exit code 2."""


# --- argument helpers ------------------------------------------------------------------------
def parse_key(text: str, fmt: str) -> bytes:
    try:
        return key_format.parse_key(text, fmt)
    except key_format.KeyFormatError as exc:
        raise UsageError(str(exc)) from None


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) if args.data_dir else cluster.default_data_dir()


def _pd_address(args: argparse.Namespace) -> str:
    """--pd, else the address in the (default) data dir's cluster.json."""
    if args.pd:
        return args.pd
    data_dir = _data_dir(args)
    state = cluster.load_state(data_dir)
    if state is None:
        raise UsageError(f"no --pd given and no devcluster in {data_dir} (start one with `br-devcluster up`, "
                         "or pass --pd HOST:PORT)")
    return state.pd_address


def _pd_client(args: argparse.Namespace) -> PDClient:
    """PD of --pd or of the data dir; with the data dir's client certificate when it serves TLS."""
    state = cluster.load_state(_data_dir(args))
    tls = state.client_tls() if state is not None and (not args.pd or args.pd == state.pd_address) else None
    return PDClient(_pd_address(args), tls=tls)


# --- commands ------------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace) -> int:
    try:
        config = cluster.ClusterConfig(stores=args.stores, replicas=args.replicas, regions=args.regions,
                                       gc_life_time=args.gc_life_time, gc_interval=args.gc_interval, tls=args.tls,
                                       region_split_size=args.region_split_size,
                                       split_check_interval=args.split_check_interval)
    except ValidationError as exc:
        raise UsageError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    data_dir = _data_dir(args)
    before = cluster.load_state(data_dir)
    running_before = {e.name for e in before.processes if cluster.is_running(e)} if before else set()
    result = cluster.up(data_dir, config, timeout=args.timeout)  # stops what it started if it fails
    state = result.state
    if not result.started:
        print(f"devcluster in {data_dir} is already running")
    elif result.created:
        print(f"started a devcluster in {data_dir}: {config.stores} stores, {config.regions} regions, "
              f"{config.replicas} replica(s), cluster id {state.cluster_id}")
    else:
        print(f"restarted {', '.join(result.started)} in {data_dir} (existing data, cluster id {state.cluster_id})")
    if not result.created and state.config != config:
        kept = state.config
        print(f"note: layout flags ignored, the existing cluster keeps {kept.stores} stores, {kept.regions} "
              f"regions at bootstrap, {kept.replicas} replica(s)")
    if not args.no_fleet:
        try:
            state = _fleet_up(args, data_dir, state)
        except BaseException:  # whatever failed (Ctrl-C too): nothing this call started stays running
            cluster.roll_back(data_dir, running_before, {e.name for e in state.processes})
            raise
    for entry in state.processes:
        print(f"  {entry.name:<10} pid {entry.pid:<8} {entry.address:<21} log {entry.log_path}")
    if state.fleet is not None:
        print(f"broker: {state.fleet.broker_url}\nS3: {state.fleet.s3_endpoint} (bucket {state.fleet.bucket})")
        if state.fleet.flower_url:
            print(f"Flower: {state.fleet.flower_url} (Prometheus: {state.fleet.flower_url}/metrics)")
        for name, url in fleet.agent_metrics_urls(state).items():
            print(f"{name} metrics: {url}")
        env_file = fleet.write_env_file(data_dir, state)
        print(f"environment for br (BR_BROKER, PD, S3_ENDPOINT, BUCKET): set -a; . {_shown(env_file)}; set +a")
        tls = "".join(f" {flag}" for flag in tls_flags(state.client_tls()))
        print(f"fleet status: br fleet status --pd {state.pd_address} --broker {state.fleet.broker_url}{tls}")
        print("next, a backup (the agents use the instance-profile credentials of the IMDS endpoint; "
              "no keys here):\n  " + fleet.backup_command(state, time.strftime("backup-%Y%m%d-%H%M%S")))
    print(f"PD: {state.pd_address}")
    return 0


def _shown(path: Path) -> str:
    """A path as short as the operator can type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _fleet_up(args: argparse.Namespace, data_dir: Path, state: cluster.ClusterState) -> cluster.ClusterState:
    """Start Redis, S3, IMDS, agents and Flower the first time; after a restart wait for the agents."""
    if state.fleet is None:
        options = fleet.FleetOptions(broker_url=args.broker, s3_endpoint=args.s3_endpoint, bucket=args.bucket,
                                     credentials_file=args.role_credentials_file, flower=not args.no_flower)
        fleet.start_fleet(data_dir, state, options)
    else:
        fleet.wait_for_agents(state.fleet.broker_url, len(state.by_role("store")), state.cluster_id)
    reloaded = cluster.load_state(data_dir)
    assert reloaded is not None
    return reloaded


def cmd_status(args: argparse.Namespace) -> int:
    st = cluster.status(_data_dir(args))
    if args.json:
        print(st.model_dump_json(indent=2))
        return 0 if st.all_running and not st.pd_error else 1
    print(f"data dir: {st.data_dir}\nPD: {st.pd_address} (cluster id {st.cluster_id})")
    for p in st.processes:
        print(f"  {p.name:<10} pid {p.pid:<8} {p.address:<21} {'running' if p.running else 'NOT RUNNING'}")
    if st.pd_error:
        print(f"PD: {st.pd_error}")
    else:
        print(f"regions: {st.regions}")
        for s in st.stores:
            print(f"  store {s.id:<4} {s.address:<21} {s.state:<9} leaders {s.leaders:<5} peers {s.peers}")
    return 0 if st.all_running and not st.pd_error else 1


def cmd_down(args: argparse.Namespace) -> int:
    result = cluster.down(_data_dir(args))
    for p in result.stopped:
        print(f"  {p.name:<10} pid {p.pid:<8} {'stopped' if p.running else 'was not running'}")
    print(f"devcluster in {_data_dir(args)} is down (data kept; `br-devcluster up` restarts it)")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    if (args.keys is None) == (args.size is None):
        raise UsageError("give exactly one of --keys N and --size SIZE")
    try:
        common = dict(value_size=args.value_size, distribution=args.distribution, seed=args.seed)
        spec = LoadSpec(keys=args.keys, **common) if args.keys is not None else LoadSpec.from_size(args.size, **common)
    except ValidationError as exc:
        raise UsageError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with _pd_client(args) as pd, (TxnKV(pd) if args.txn else RawKVClient(pd)) as client:
        put = client.commit if args.txn else lambda pairs: client.batch_put(pairs, args.batch_bytes)
        started = time.monotonic()
        with _progress(spec.total_bytes) as advance:
            run_load(KeyGen(spec), put, args.batch_bytes, args.writers, advance)
        elapsed = time.monotonic() - started
    how = "in transactions of about --batch-bytes" if args.txn else "raw"
    print(f"wrote {spec.keys} keys ({spec.total_bytes} bytes, {spec.distribution.value}, seed {spec.seed}, {how}) "
          f"in {elapsed:.1f}s ({spec.total_bytes / max(elapsed, 1e-9) / 1e6:.1f} MB/s)")
    return 0


def cmd_checksum(args: argparse.Namespace) -> int:
    start, end = parse_key(args.start, args.format), parse_key(args.end, args.format)
    if end and end < start:
        raise UsageError(f"--end {args.end!r} sorts before --start {args.start!r}")
    with _pd_client(args) as pd, (TxnKV(pd) if args.txn else SnapshotKV(pd)) as client:
        if args.ts is not None:  # the stores answer below the GC safe point as TiKV does (with what is left)
            require_after_safe_point(pd, args.ts, "--ts", "use a later --ts, or none for a fresh one")
        ts = args.ts if args.ts is not None else pd.tso()
        result = client.checksum_at(start, end, ts) if args.txn else client.checksum(start, end, ts=ts)
    print(f"range: [{key_format.format_key(start)}, {key_format.format_key(end)}) (hex)")
    print(f"ts: {ts}")
    print(f"crc64xor: {result.crc64xor:#018x}")
    print(f"total_kvs: {result.total_kvs}")
    print(f"total_bytes: {result.total_bytes}")
    return 0


# --- progress ----------------------------------------------------------------------------
class _progress:
    """A rich bar on a terminal; otherwise a plain line every 10 % (logs and CI stay readable)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        self._next_line = 0.1

    def __enter__(self) -> Callable[[int], None]:
        if sys.stderr.isatty():
            self._bar = Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                 TimeRemainingColumn(), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("load", total=self.total)
        return self.advance

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done)
            elif self.done >= self._next_line * self.total:
                print(f"load: {self.done}/{self.total} bytes ({100 * self.done // max(self.total, 1)}%)",
                      file=sys.stderr, flush=True)
                while self._next_line * self.total <= self.done:
                    self._next_line += 0.1

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.stop()


# --- parser ------------------------------------------------------------------------------
def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="D",
                   help="cluster directory (default: $BR_DEVCLUSTER_DIR, else ./.devcluster)")


def _add_pd(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pd", metavar="HOST:PORT", help="PD address (default: the one in the data dir's cluster.json)")
    _add_data_dir(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="br-devcluster",
        description="Run a TiKV-style cluster on this machine (one PD and N store processes speaking kvproto's "
                    "gRPC), fill it with deterministic data and checksum it.",
        epilog="Typical session: br-devcluster up; br-devcluster load --size 100MB; br-devcluster checksum; "
               "br-devcluster down.  State, data and logs live in the data dir; `up` on a stopped data dir "
               "restarts the same cluster with its data.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("up", help="start a cluster (or restart a stopped one)",
                       description="Start PD and the stores as background processes on free loopback ports and "
                                   "wait until every region has a leader. The layout flags apply only when the "
                                   "data dir is new. The last line printed is `PD: HOST:PORT`.")
    p.add_argument("--stores", type=int, default=3, metavar="N", help="store processes (default 3)")
    p.add_argument("--replicas", type=int, default=1, metavar="R", help="peers per region, <= stores (default 1)")
    p.add_argument("--regions", type=int, default=1, metavar="K",
                   help="regions at bootstrap (default 1, as a real cluster); K > 1 pre-splits evenly over the "
                        "first two key bytes (memcomparable-encoded)")
    p.add_argument("--region-split-size", type=_size, metavar="SIZE",
                   help="every store splits a region it leads once its data is larger, e.g. 64KiB "
                        "(default: the store's, TiKV's 96MiB)")
    p.add_argument("--split-check-interval", type=float, metavar="SECONDS",
                   help="how often stores check region sizes (default: the store's, 10 as TiKV)")
    p.add_argument("--gc-life-time", type=float, metavar="SECONDS",
                   help="PD's GC life time: versions older than this may be removed (default: PD's own)")
    p.add_argument("--gc-interval", type=float, metavar="SECONDS", help="how often stores run GC (default: the store's)")
    p.add_argument("--tls", action="store_true",
                   help="PD and the stores serve TLS and require client certificates, as a cluster deployed with "
                        "tiup's enable_tls; certificates are made in DATA_DIR/tls (br and br-agent take "
                        "--ca/--cert/--key, printed below)")
    p.add_argument("--timeout", type=float, default=cluster.DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="how long to wait for the cluster to be ready (default %(default)s)")
    fl = p.add_argument_group("fleet", "Besides PD and the stores, `up` starts Redis (the Celery broker), an "
                                       "S3-compatible server (SeaweedFS) with a bucket, a loopback EC2 "
                                       "instance-metadata endpoint that hands role credentials to the agents, one "
                                       "br-agent per store, and Flower.")
    fl.add_argument("--no-fleet", action="store_true", help="start only PD and the stores")
    fl.add_argument("--broker", metavar="URL", help="use this existing Redis instead of starting one")
    fl.add_argument("--s3-endpoint", metavar="URL",
                    help="use this existing S3-compatible endpoint instead of starting SeaweedFS")
    fl.add_argument("--bucket", default=fleet.DEFAULT_BUCKET, help="bucket to create and use (default %(default)s)")
    fl.add_argument("--role-credentials-file", type=Path, metavar="FILE",
                    help="JSON {AccessKeyId, SecretAccessKey, Token} the metadata endpoint hands to the agents "
                         "(default: keys generated once per data dir)")
    fl.add_argument("--no-flower", action="store_true", help="do not start Flower")
    _add_data_dir(p)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("status", help="show processes, stores, regions and leaders",
                       description="Exit code 0 when every process of the table runs and PD answers, 1 otherwise.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_data_dir(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("down", help="stop every process of the cluster (data is kept)")
    _add_data_dir(p)
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("load", help="write deterministic key/value pairs",
                       description="Write KEYS pairs of 16-byte keys (the first 8 bytes spread over the whole key "
                                   "space, so every region gets data) and VALUE-SIZE-byte values that depend only on "
                                   "(seed, index): the same flags always write the same data.")
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("--keys", type=int, metavar="N", help="number of pairs")
    amount.add_argument("--size", type=_size, metavar="SIZE",
                        help="total size instead of --keys: keys = SIZE / (16 + VALUE-SIZE); units KB/MB/GB "
                             "(powers of 10) or KiB/MiB/GiB")
    p.add_argument("--value-size", type=_size, default=1024, metavar="B", help="bytes per value (default 1024)")
    p.add_argument("--distribution", choices=[d.value for d in Distribution], default="uniform",
                   help="uniform: key prefix = hash(seed, i); sequential: prefix = i scaled over 2**64 (default uniform)")
    p.add_argument("--seed", type=int, default=0, help="changes keys (uniform) and values (default 0)")
    p.add_argument("--batch-bytes", type=_size, default=4 * 1024 * 1024, metavar="SIZE",
                   help="bytes per writer batch and per RawBatchPut (default 4MiB)")
    p.add_argument("--writers", type=int, default=4, metavar="N", help="writer threads (default 4)")
    p.add_argument("--txn", action="store_true",
                   help="write through the transactional API (Percolator 2PC), one transaction per batch")
    _add_pd(p)
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("checksum", help="checksum of a key range (crc64xor, total_kvs, total_bytes)",
                       description="Checksum [START, END): raw data as it is now (RawChecksum), or with --txn the "
                                   "transactional data at timestamp TS (default: a fresh TSO, so every region is "
                                   "read at the same snapshot). An empty END means the end of the key space.")
    p.add_argument("--start", default="", metavar="KEY", help="first key (default: the start of the key space)")
    p.add_argument("--end", default="", metavar="KEY", help="end key, exclusive (default: unbounded)")
    p.add_argument("--format", choices=key_format.KEY_FORMATS, default="hex",
                   help="how --start/--end are written, as BR's --format: raw text, hex, or C-style escape "
                        "like '\\x74\\x00' (default hex)")
    p.add_argument("--ts", type=int, metavar="TS", help="read timestamp (TSO); default: a fresh one from PD. Raw "
                   "data is unversioned (API V1): only --txn reads at it")
    p.add_argument("--txn", action="store_true",
                   help="checksum transactional data at TS through the Coprocessor (tp 105, as BR and TiDB do)")
    _add_pd(p)
    p.set_defaults(func=cmd_checksum)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "writers", 1) < 1 or getattr(args, "batch_bytes", 1) < 1:
        parser.error("--writers and --batch-bytes must be positive")
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"br-devcluster {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (cluster.ClusterError, PDError, RawKVError, ValueError, OSError) as exc:
        print(f"br-devcluster {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"br-devcluster {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line, never a traceback
        print(f"br-devcluster {args.command}: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
