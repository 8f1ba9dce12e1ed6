"""The fleet half of `br-devcluster up`: Redis, an S3-compatible server with a bucket, a loopback
EC2 instance-metadata endpoint, one br-agent per store and Flower.

Each component is started once by its launcher (br_devcluster.services) and recorded as a row of
the cluster's process table, so `down` stops it by PID and `up` restarts it with the same argv
and ports. Agents get their S3 credentials only from the IMDS endpoint (boto3's default chain,
as on EC2): every AWS credential variable is removed from their environment, and the keys sit
in a 0600 file the IMDS server reads, never on a command line.
"""
from __future__ import annotations

import importlib.util
import os
import secrets
import sys
import time
from pathlib import Path

import redis
from pydantic import BaseModel

from br_common.fleet.registry import Registry
from br_devcluster import cluster
from br_devcluster.cluster import ClusterError, ClusterState, FleetInfo, ProcessEntry
from br_devcluster.services import RoleCredentials, ServiceError, ServiceHandle, create_bucket, start_flower, \
    start_imds, start_redis, start_seaweedfs
from br_devcluster.services._launch import pick_port
from br_devcluster.services.imds import AWS_CREDENTIAL_ENV
from br_devcluster.tls import tls_flags

DEFAULT_BUCKET = "br-fleet"
AGENT_WAIT_SECONDS = 60.0


class FleetOptions(BaseModel):
    """What `up` starts beside PD and the stores; an existing broker or S3 endpoint is used instead."""

    broker_url: str | None = None
    s3_endpoint: str | None = None
    bucket: str = DEFAULT_BUCKET
    credentials_file: Path | None = None  # role credentials the IMDS hands out (default: generated)
    flower: bool = True


def start_fleet(data_dir: Path, state: ClusterState, options: FleetOptions) -> FleetInfo:
    """Start every fleet component once, record it in the process table and wait for the agents."""
    data_dir = data_dir.resolve()
    try:
        broker_url = options.broker_url or _record(data_dir, "redis", start_redis(data_dir / "redis"))
        credentials = _role_credentials(data_dir, options.credentials_file)
        s3_endpoint = options.s3_endpoint or _record(data_dir, "s3", _start_s3(data_dir), unset_env=_S3_ENV)
        create_bucket(s3_endpoint, options.bucket, access_key=credentials.access_key_id,
                      secret_key=credentials.secret_access_key)
        imds_url = _record(data_dir, "imds", start_imds(data_dir / "imds", credentials))
        for store in state.by_role("store"):
            _start_agent(data_dir, state, store, broker_url, imds_url)
        flower_url = _start_flower(data_dir, broker_url) if options.flower else ""  # starts beside the agents
    except ServiceError as exc:
        raise ClusterError(str(exc)) from None
    info = FleetInfo(broker_url=broker_url, s3_endpoint=s3_endpoint, bucket=options.bucket,
                     flower_url=flower_url, imds_url=imds_url)
    _save_fleet(data_dir, info)
    wait_for_agents(info.broker_url, len(state.by_role("store")), state.cluster_id)
    if flower_url:
        refresh_flower(flower_url, len(state.by_role("store")))
    return info


def refresh_flower(flower_url: str, workers: int, timeout: float = 15.0) -> None:
    """Have Flower inspect the workers until it knows all `workers` of them: it learns their queues
    (its Broker page) only by inspecting, and Flower may have started before the agents. Best effort."""
    import json  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{flower_url}/api/workers?refresh=1", timeout=timeout) as reply:
                known = json.loads(reply.read())
            if sum(1 for w in known.values() if w.get("active_queues")) >= workers:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.3)


_S3_ENV = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "S3_BUCKET"]


def _start_s3(data_dir: Path) -> ServiceHandle:
    return start_seaweedfs(data_dir / "s3")


def _record(data_dir: Path, role: str, handle: ServiceHandle, unset_env: list[str] | None = None,
            env: dict[str, str] | None = None) -> str:
    """Add a launcher-started service to the process table; returns its URL."""
    cluster.add_process(data_dir, ProcessEntry(name=role, role=role, pid=handle.pid, address=handle.address,
                                               log_path=str(handle.log_path), args=handle.args,
                                               env=env or {}, unset_env=unset_env or []))
    return handle.url


def _role_credentials(data_dir: Path, credentials_file: Path | None) -> RoleCredentials:
    """The instance role's keys: given, or generated once per data dir (kept in a 0600 file)."""
    path = credentials_file or data_dir / "imds" / "role-credentials.json"
    if path.exists():
        return RoleCredentials.model_validate_json(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    creds = RoleCredentials(AccessKeyId="BRFLEET" + secrets.token_hex(6).upper(),
                            SecretAccessKey=secrets.token_urlsafe(30), Token=secrets.token_urlsafe(24))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(creds.model_dump_json(by_alias=True))
    return creds


def agent_entry(data_dir: Path, state: ClusterState, store: ProcessEntry, broker_url: str,
                imds_url: str) -> ProcessEntry:
    """The row of the agent beside `store`: its credentials come from the IMDS endpoint only."""
    name = store.name.replace("store", "agent", 1)
    args = [sys.executable, "-m", "br_agent", "--store", store.address, "--pd", state.pd_address,
            "--broker", broker_url, "--staging-dir", str(data_dir / "agents" / name),
            "--store-import-dir", str(cluster.store_import_dir(store)),
            "--metrics-port", str(pick_port()),  # one endpoint per agent; kept across restarts (argv)
            *tls_flags(state.client_tls())]
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
           "AWS_CONFIG_FILE": os.devnull}
    return ProcessEntry(name=name, role="agent", log_path=str(data_dir / "logs" / f"{name}.log"), args=args,
                        env=env, unset_env=list(AWS_CREDENTIAL_ENV))


def _start_agent(data_dir: Path, state: ClusterState, store: ProcessEntry, broker_url: str, imds_url: str) -> None:
    entry = agent_entry(data_dir, state, store, broker_url, imds_url)
    cluster.add_process(data_dir, entry)
    cluster.start_process(data_dir, entry.name)


def _start_flower(data_dir: Path, broker_url: str) -> str:
    if importlib.util.find_spec("flower") is None:
        raise ClusterError("Flower is not installed: pip install 'br-fleet[devcluster]', or up --no-flower")
    handle = start_flower(data_dir / "flower", broker_url)
    env = {"BR_BROKER": broker_url, "FLOWER_UNAUTHENTICATED_API": "true"}
    return _record(data_dir, "flower", handle, env=env, unset_env=["FLOWER_BASIC_AUTH"])


def _save_fleet(data_dir: Path, info: FleetInfo) -> None:
    with cluster.locked(data_dir):
        state = cluster.load_state(data_dir)
        if state is None:
            raise ClusterError(f"no devcluster in {data_dir}")
        state.fleet = info
        cluster.save_state(data_dir, state)


def wait_for_agents(broker_url: str, count: int, cluster_id: int, timeout: float = AGENT_WAIT_SECONDS) -> None:
    """Until `count` stores of cluster `cluster_id` have a live agent heartbeat in Redis (another
    cluster's agents may share the broker)."""
    client = redis.Redis.from_url(broker_url)
    deadline = time.monotonic() + timeout
    stores: set[int] = set()
    try:
        while time.monotonic() < deadline:
            try:
                stores = {agent.store_id for agent in Registry(client).alive(cluster_id)}
            except redis.RedisError:
                stores = set()
            if len(stores) >= count:
                return
            time.sleep(0.2)
    finally:
        client.close()
    raise ClusterError(f"only {len(stores)} of {count} agents came up within {timeout:.0f}s "
                       "(see the agent-N.log files in the data dir's logs/)")


def agent_metrics_urls(state: ClusterState) -> dict[str, str]:
    """Each agent's Prometheus endpoint, from its argv in the process table (name -> URL)."""
    urls = {}
    for entry in state.by_role("agent"):
        if "--metrics-port" in entry.args:
            port = entry.args[entry.args.index("--metrics-port") + 1]
            urls[entry.name] = f"http://127.0.0.1:{port}/metrics"
    return urls


ENV_FILE = "br.env"


def write_env_file(data_dir: Path, state: ClusterState) -> Path:
    """`<data dir>/br.env`: what `br`, `br fleet status` and `celery -A br_common.fleet.app` need to
    find this devcluster (BR_BROKER), plus PD and S3 for the README's commands. No keys in it.
    Used as on a real coordinator host: `set -a; . .devcluster/br.env; set +a`."""
    assert state.fleet is not None
    lines = ["# written by `br-devcluster up`; load with: set -a; . THIS_FILE; set +a",
             f"BR_BROKER={state.fleet.broker_url}", f"PD={state.pd_address}",
             f"S3_ENDPOINT={state.fleet.s3_endpoint}", f"BUCKET={state.fleet.bucket}"]
    if state.fleet.flower_url:
        lines.append(f"FLOWER={state.fleet.flower_url}")
    path = data_dir / ENV_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def backup_command(state: ClusterState, name: str) -> str:
    """The `br backup full` an operator runs next: storage URL without keys, broker explicit."""
    assert state.fleet is not None
    storage = f"s3://{state.fleet.bucket}/{name}?endpoint={state.fleet.s3_endpoint}"
    tls = " ".join(tls_flags(state.client_tls()))
    return (f'br backup full --pd {state.pd_address} --storage "{storage}" '
            f"--broker {state.fleet.broker_url}{' ' + tls if tls else ''} --log-file backup.log")
