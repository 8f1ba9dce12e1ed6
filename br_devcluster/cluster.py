"""Launch, inspect and stop a devcluster: PD and N stores as separate processes.

Everything about a running cluster is in D/cluster.json: PD's address, the cluster id and a
process table (name, role, pid, address, log, argv). Other components (Redis, an S3 server,
agents, Flower) append their own rows with `add_process`; `down` stops every row by PID in
reverse order, and `up` on a stopped data dir re-runs every row's argv, so the cluster comes
back with its data on the same ports.
"""
from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from br_common import procs
from br_common.grpc_tls import TLSConfig
from br_common.kvproto import metapb_pb2
from br_common.pd_client import PDClient, PDError
from br_devcluster.services import seaweedfs
from br_devcluster.tls import client_tls, make_certificates, node_tls, tls_flags

STATE_FILE = "cluster.json"
LOCK_FILE = ".cluster.lock"
HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 60.0


class ClusterError(RuntimeError):
    """A clear, user-facing reason why a cluster operation did not succeed."""


def default_data_dir() -> Path:
    return Path(os.environ.get("BR_DEVCLUSTER_DIR") or ".devcluster")


class ClusterConfig(BaseModel):
    """The layout asked of `up` (used only when a data dir is created)."""

    stores: int = Field(default=3, ge=1, le=64)
    replicas: int = Field(default=1, ge=1)
    regions: int = Field(default=1, ge=1, le=65536)  # a real cluster starts with one region; loads split it
    gc_life_time: float | None = Field(default=None, ge=0)
    gc_interval: float | None = Field(default=None, gt=0)
    region_split_size: int | None = Field(default=None, gt=0)  # None: the store's (TiKV's 96 MiB)
    split_check_interval: float | None = Field(default=None, gt=0)
    tls: bool = False  # PD and stores serve TLS (and require client certificates), as tiup's enable_tls
    tso_clock_offset: float | None = None  # seconds PD's TSO clock is off the wall clock (negative: it lags)

    @model_validator(mode="after")
    def _replicas_fit(self) -> "ClusterConfig":
        if self.replicas > self.stores:
            raise ValueError(f"--replicas {self.replicas} needs at least as many stores (got {self.stores})")
        return self


class ProcessEntry(BaseModel):
    """One row of the process table; `args` is the full argv, re-run as is on restart."""

    name: str
    role: str
    pid: int = 0
    address: str = ""
    log_path: str
    args: list[str]
    env: dict[str, str] = Field(default_factory=dict)  # overrides only; never secrets
    unset_env: list[str] = Field(default_factory=list)  # removed from the inherited environment

    @property
    def port(self) -> int | None:
        return int(self.address.rsplit(":", 1)[1]) if ":" in self.address else None


class FleetInfo(BaseModel):
    """How to reach the fleet components `up` started (or was told to use); no secrets."""

    broker_url: str
    s3_endpoint: str
    bucket: str
    flower_url: str = ""
    imds_url: str = ""


class ClusterState(BaseModel):
    """D/cluster.json."""

    format_version: int = 1
    pd_address: str
    cluster_id: int = 0
    config: ClusterConfig
    processes: list[ProcessEntry]
    fleet: FleetInfo | None = None  # set once `up` started Redis, S3, IMDS, agents and Flower
    tls_dir: str = ""  # the certificates of a --tls cluster (br_devcluster.tls)

    def entry(self, name: str) -> ProcessEntry:
        for entry in self.processes:
            if entry.name == name:
                return entry
        raise ClusterError(f"no process named {name!r} in the cluster table")

    def by_role(self, role: str) -> list[ProcessEntry]:
        return [e for e in self.processes if e.role == role]

    def client_tls(self) -> TLSConfig:
        """What a client of this cluster's PD and stores presents (plain gRPC without --tls)."""
        return client_tls(Path(self.tls_dir)) if self.tls_dir else TLSConfig()


class UpResult(BaseModel):
    state: ClusterState
    started: list[str]  # names (re)started by this call; empty = it was already running
    created: bool


# --- state file --------------------------------------------------------------------------
def store_import_dir(store: ProcessEntry) -> Path:
    """Where a store stages downloaded SSTs, as TiKV's <data-dir>/import (its agent cleans it up)."""
    return Path(store.args[store.args.index("--data-dir") + 1]) / "import"


def load_state(data_dir: Path) -> ClusterState | None:
    path = data_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        return ClusterState.model_validate_json(path.read_bytes())
    except ValueError as exc:
        raise ClusterError(f"{path} is not a devcluster state file: {exc}") from None


def save_state(data_dir: Path, state: ClusterState) -> None:
    """Atomic: a reader sees the old or the new table, never half of one."""
    tmp = data_dir / f".{STATE_FILE}.tmp"
    tmp.write_text(state.model_dump_json(indent=2))
    os.replace(tmp, data_dir / STATE_FILE)


@contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Serialises up/down/add_process on one data dir (two `up`s at once would race)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def is_running(entry: ProcessEntry) -> bool:
    """Alive and still running our argv (a PID reused after a reboot does not count)."""
    if entry.pid <= 0 or not procs.pid_alive(entry.pid):
        return False
    try:
        cmdline = Path(f"/proc/{entry.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the PID
    if [c.decode(errors="replace") for c in cmdline if c] == entry.args:
        return True
    return _same_executable(entry.pid, entry.args[0])  # servers such as redis rewrite their title


def _same_executable(pid: int, program: str) -> bool:
    try:
        running = os.path.realpath(f"/proc/{pid}/exe", strict=True)
    except OSError:
        return False
    return running == os.path.realpath(shutil.which(program) or program)


# --- up ----------------------------------------------------------------------------------
def _python_module(module: str, *args: object) -> list[str]:
    return [sys.executable, "-m", module, *(str(a) for a in args)]


def _new_state(data_dir: Path, config: ClusterConfig) -> ClusterState:
    data_dir = data_dir.resolve()
    logs = data_dir / "logs"
    pd_port = procs.free_port()
    pd_address = f"{HOST}:{pd_port}"
    pd_args = _python_module("br_devcluster.pd", "--data-dir", data_dir / "pd", "--host", HOST, "--port", pd_port,
                             "--initial-stores", config.stores, "--initial-regions", config.regions,
                             "--max-replicas", config.replicas)
    if config.gc_life_time is not None:
        pd_args += ["--gc-life-time", str(config.gc_life_time)]
    if config.tso_clock_offset:
        pd_args += ["--tso-clock-offset", str(config.tso_clock_offset)]
    tls_dir = data_dir / "tls"
    if config.tls:
        make_certificates(tls_dir)
    server_tls = tls_flags(node_tls(tls_dir), "--tls-") if config.tls else []
    pd_args += server_tls
    rows = [ProcessEntry(name="pd", role="pd", address=pd_address, log_path=str(logs / "pd.log"), args=pd_args)]
    for n in range(1, config.stores + 1):
        port = procs.free_port()
        while any(r.port == port for r in rows):
            port = procs.free_port()
        args = _python_module("br_devcluster.store", "--pd", pd_address, "--data-dir", data_dir / f"store-{n}",
                              "--host", HOST, "--port", port)
        args += _store_flags(config) + server_tls
        rows.append(ProcessEntry(name=f"store-{n}", role="store", address=f"{HOST}:{port}",
                                 log_path=str(logs / f"store-{n}.log"), args=args))
    return ClusterState(pd_address=pd_address, config=config, processes=rows,
                        tls_dir=str(tls_dir) if config.tls else "")


def _store_flags(config: ClusterConfig) -> list[str]:
    """The store flags the config sets; the rest keep the store's defaults."""
    flags = {"--gc-interval": config.gc_interval, "--region-split-size": config.region_split_size,
             "--split-check-interval": config.split_check_interval}
    return [part for flag, value in flags.items() if value is not None for part in (flag, str(value))]


def up(data_dir: Path, config: ClusterConfig | None = None, timeout: float = DEFAULT_TIMEOUT) -> UpResult:
    """Create and start a cluster, restart a stopped one, or report that it already runs."""
    with locked(data_dir):
        state = load_state(data_dir)
        created = state is None
        if state is None:
            state = _new_state(data_dir, config or ClusterConfig())
        started: list[str] = []
        try:
            start_entries([e for e in state.processes if not is_running(e)], started, timeout)
            save_state(data_dir, state)
            if started:
                state.cluster_id = wait_ready(state, expect_regions=created, timeout=timeout)
            if created:
                _name_stores_by_id(state)
        except BaseException as exc:  # whatever failed (Ctrl-C too): nothing this call started stays running
            for name in reversed(started):
                procs.stop_pid(state.entry(name).pid)
            save_state(data_dir, state)
            if isinstance(exc, (ClusterError, PDError)):
                raise ClusterError(str(exc)) from None
            raise
        save_state(data_dir, state)
        return UpResult(state=state, started=started, created=created)


def _name_stores_by_id(state: ClusterState) -> None:
    """Rows (and their logs) named after the ids PD gave the stores, which register in any order:
    store-3 is the store PD and br call store 3. Logs move in two steps (store-1 <-> store-2)."""
    with PDClient(state.pd_address, timeout=5.0, tls=state.client_tls()) as pd:
        ids = {s.address: s.id for s in pd.stores()}
    moved = []
    for entry in state.by_role("store"):
        if entry.address in ids:
            entry.name = f"store-{ids[entry.address]}"
            parked = Path(entry.log_path).with_name(f".{Path(entry.log_path).name}.renaming")
            os.replace(entry.log_path, parked)  # the store keeps writing to it through its open file
            moved.append((entry, parked))
    for entry, parked in moved:
        entry.log_path = str(parked.with_name(f"{entry.name}.log"))
        os.replace(parked, entry.log_path)


def start_entries(entries: list[ProcessEntry], started: list[str], timeout: float = DEFAULT_TIMEOUT) -> None:
    """PD first (the others need it), then all the rest at once; appends names to `started`."""
    first = [e for e in entries if e.role == "pd"]
    for wave in (first, [e for e in entries if e.role != "pd"]):
        spawned = []
        for entry in wave:
            spawned.append((entry, _spawn(entry)))
            started.append(entry.name)
        for entry, proc in spawned:
            _wait_listening(entry, proc, timeout)


def start_entry(entry: ProcessEntry, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Spawn one row's argv and wait until its port (if any) listens; updates entry.pid."""
    _wait_listening(entry, _spawn(entry), timeout)


def _spawn(entry: ProcessEntry) -> subprocess.Popen:
    port = entry.port
    if port is not None and not _port_freed(port, timeout=2.0):
        raise ClusterError(f"cannot start {entry.name}: port {port} is in use by another process")
    inherited = {k: v for k, v in os.environ.items() if k not in entry.unset_env}
    env = {**inherited, "PYTHONUNBUFFERED": "1", **entry.env}
    proc = procs.spawn(entry.args, Path(entry.log_path), env=env)
    entry.pid = proc.pid
    return proc


def _port_freed(port: int, timeout: float = 5.0) -> bool:
    """Whether nothing listens on port, waiting a little: a SIGKILLed multi-threaded process
    shows as a zombie (procs.pid_alive: gone) while its other threads still hold its sockets."""
    deadline = time.monotonic() + timeout
    while procs.port_open(HOST, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# seconds a SIGTERMed process gets before SIGKILL, by role (default 10 s)
STOP_TIMEOUT = {"s3": seaweedfs.STOP_SECONDS}


def _stop(entry: ProcessEntry, kill: bool = False) -> None:
    """Stop by PID and wait until its port is released, so a restart can bind it again."""
    if kill:
        os.kill(entry.pid, signal.SIGKILL)
    timeout = 5.0 if kill else STOP_TIMEOUT.get(entry.role, 10.0)
    procs.stop_pid(entry.pid, timeout=timeout)  # also reaps it when it is our child
    if entry.port is not None:
        _port_freed(entry.port)


def _wait_listening(entry: ProcessEntry, proc: subprocess.Popen, timeout: float) -> None:
    if entry.port is None:
        return
    try:
        procs.wait_for_port(HOST, entry.port, timeout=timeout, proc=proc)
    except (RuntimeError, TimeoutError) as exc:
        procs.stop_pid(proc.pid)
        raise ClusterError(f"{entry.name} did not start ({exc}); log {entry.log_path}:\n"
                           f"{log_tail(entry.log_path)}") from None


def wait_ready(state: ClusterState, expect_regions: bool, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Until PD answers, every store row is registered and up, and every region has a leader.

    On a fresh cluster also until PD bootstrapped all `config.regions` regions. Returns the
    cluster id.
    """
    deadline = time.monotonic() + timeout
    want_stores = {e.address for e in state.by_role("store")}
    last = "PD not answering"
    with _connect(state.pd_address, deadline, state.client_tls()) as pd:
        while time.monotonic() < deadline:
            _check_alive(state)
            last = _readiness(pd, want_stores, state.config.regions if expect_regions else 0)
            if not last:
                return pd.cluster_id
            time.sleep(0.1)
    raise ClusterError(f"cluster not ready after {timeout:.0f}s: {last} (logs in {Path(state.processes[0].log_path).parent})")


def _connect(address: str, deadline: float, tls: TLSConfig | None = None) -> PDClient:
    while True:
        try:
            return PDClient(address, timeout=2.0, tls=tls)
        except PDError as exc:
            if time.monotonic() > deadline:
                raise ClusterError(str(exc)) from None
            time.sleep(0.1)


def _readiness(pd: PDClient, want_stores: set[str], want_regions: int) -> str:
    """"" when ready, else what is still missing."""
    try:
        registered = {s.address for s in pd.stores()}
        missing = want_stores - registered
        if missing:
            return f"stores not registered yet: {sorted(missing)}"
        regions = list(pd.scan_regions())
    except PDError as exc:
        return str(exc)
    if not regions or (want_regions and len(regions) < want_regions):
        return f"{len(regions)} of {want_regions or 'some'} regions bootstrapped"
    leaderless = [r.id for r in regions if r.leader is None]
    return f"regions without leader: {leaderless}" if leaderless else ""


def _check_alive(state: ClusterState) -> None:
    for entry in state.processes:
        if entry.pid and not procs.pid_alive(entry.pid):
            raise ClusterError(f"{entry.name} (pid {entry.pid}) exited; log {entry.log_path}:\n"
                               f"{log_tail(entry.log_path)}")


def log_tail(path: str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("  " + line for line in text[-lines:])


# --- other components, single processes ----------------------------------------------------
def add_process(data_dir: Path, entry: ProcessEntry) -> ClusterState:
    """Append (or replace, by name) a row, e.g. a Redis or S3 server a launcher started."""
    with locked(data_dir):
        state = _require_state(data_dir)
        state.processes = [e for e in state.processes if e.name != entry.name] + [entry]
        save_state(data_dir, state)
        return state


def stop_process(data_dir: Path, name: str, kill: bool = False) -> None:
    """Stop one row (SIGTERM, or SIGKILL to simulate a crash); its row stays for restart."""
    state = _require_state(data_dir)
    entry = state.entry(name)
    if not is_running(entry):
        return
    _stop(entry, kill)


def start_process(data_dir: Path, name: str, timeout: float = DEFAULT_TIMEOUT) -> ProcessEntry:
    """Restart one stopped row with its argv (same port and data) and record its new PID."""
    with locked(data_dir):
        state = _require_state(data_dir)
        entry = state.entry(name)
        if not is_running(entry):
            start_entry(entry, timeout)
            save_state(data_dir, state)
        return entry


def _require_state(data_dir: Path) -> ClusterState:
    state = load_state(data_dir)
    if state is None:
        raise ClusterError(f"no devcluster in {data_dir} (run `br-devcluster up --data-dir {data_dir}`)")
    return state


# --- status and down ------------------------------------------------------------------------
class ProcessStatus(BaseModel):
    name: str
    role: str
    pid: int
    address: str
    running: bool
    log_path: str


class StoreStatus(BaseModel):
    id: int
    address: str
    state: str
    leaders: int
    peers: int


class ClusterStatus(BaseModel):
    data_dir: str
    pd_address: str
    cluster_id: int
    processes: list[ProcessStatus]
    stores: list[StoreStatus] = Field(default_factory=list)
    regions: int = 0
    pd_error: str = ""

    @property
    def all_running(self) -> bool:
        return all(p.running for p in self.processes)


def status(data_dir: Path) -> ClusterStatus:
    state = _require_state(data_dir)
    rows = [ProcessStatus(name=e.name, role=e.role, pid=e.pid, address=e.address, running=is_running(e),
                          log_path=e.log_path) for e in state.processes]
    result = ClusterStatus(data_dir=str(data_dir.resolve()), pd_address=state.pd_address,
                           cluster_id=state.cluster_id, processes=rows)
    if not any(p.running for p in rows if p.role == "pd"):
        result.pd_error = "PD is not running"
        return result
    try:
        with PDClient(state.pd_address, timeout=5.0, tls=state.client_tls()) as pd:
            _fill_from_pd(result, pd)
    except PDError as exc:
        result.pd_error = str(exc)
    return result


def _fill_from_pd(result: ClusterStatus, pd: PDClient) -> None:
    regions = list(pd.scan_regions())
    result.regions = len(regions)
    for store in pd.stores():
        leaders = sum(1 for r in regions if r.leader_store_id == store.id)
        peers = sum(1 for r in regions for p in r.region.peers if p.store_id == store.id)
        result.stores.append(StoreStatus(id=store.id, address=store.address, state=_store_state(store.state),
                                         leaders=leaders, peers=peers))


def _store_state(value: int) -> str:
    return metapb_pb2.StoreState.Name(value)


class DownResult(BaseModel):
    stopped: list[ProcessStatus]  # running = True: it was running and got stopped


# `down` stops in waves, each wave's processes at once: what uses the servers before the servers
STOP_WAVES = (("flower", "agent"), ("imds", "s3", "redis"), ("store",), ("pd",))


def _stop_wave(entry: ProcessEntry) -> int:
    return next((i for i, roles in enumerate(STOP_WAVES) if entry.role in roles), -1)


def down(data_dir: Path) -> DownResult:
    """Stop every row by PID: agents and Flower, then Redis/S3/IMDS, then the stores, then PD; each
    wave at once, so a cluster stops as fast as its slowest member of each wave."""
    with locked(data_dir):
        state = _require_state(data_dir)
        running = {entry.name: is_running(entry) for entry in state.processes}
        _stop_in_waves([e for e in state.processes if running[e.name]])
        return DownResult(stopped=[ProcessStatus(name=e.name, role=e.role, pid=e.pid, address=e.address,
                                                 running=running[e.name], log_path=e.log_path)
                                   for e in reversed(state.processes)])


def _stop_in_waves(entries: list[ProcessEntry]) -> None:
    waves = sorted(reversed(entries), key=_stop_wave)  # unknown roles first, stable order
    for _, wave in itertools.groupby(waves, key=_stop_wave):
        to_stop = list(wave)
        with ThreadPoolExecutor(max_workers=max(1, len(to_stop))) as pool:
            list(pool.map(_stop, to_stop))


def roll_back(data_dir: Path, running_before: set[str], rows_before: set[str]) -> None:
    """Undo a failed `up`: stop every process it started (what was running before keeps running) and
    forget the rows it added, so the next `up` starts those components afresh instead of restarting
    half of them beside new ones."""
    with locked(data_dir):
        state = _require_state(data_dir)
        _stop_in_waves([e for e in state.processes if e.name not in running_before and is_running(e)])
        kept = [e for e in state.processes if e.name in rows_before]
        if len(kept) < len(state.processes):
            state.fleet = None  # it named components whose rows are gone: the next `up` starts the fleet again
        state.processes = kept
        save_state(data_dir, state)
