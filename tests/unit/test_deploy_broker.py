"""The broker and Flower set up exactly as deploy/ and docs/DEPLOY.md say: Redis from
deploy/redis/br-fleet.conf with the certificates of deploy/redis/make-redis-tls.sh (TLS only,
password required), Flower started by br-flower.service's command from flower.env.example
(basic auth on, loopback only, persistent), and a worker joining with the agent's broker URL.
Only paths, ports and placeholders are changed.
"""
from __future__ import annotations

import base64
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
import redis

from br_common.procs import free_port, spawn, stop_pid, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

pytestmark = pytest.mark.integration


def _env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            value = match.group(2)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            env[match.group(1)] = value
    return env


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses with a socket listening on `port` (from /proc/net/tcp*)."""
    found = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # LISTEN
                found.add(address)
    return found


@pytest.fixture
def broker(tmp_path):
    """Redis configured by deploy/redis/: (port, password, ca_file)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    tls = tmp_path / "tls"
    made = subprocess.run(["sh", str(DEPLOY / "redis" / "make-redis-tls.sh"), "br-coordinator.internal",
                           "127.0.0.1", str(tls)], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    for name in ("ca.crt", "ca.key", "redis.crt", "redis.key"):
        assert (tls / name).exists(), name
    assert (tls / "redis.key").stat().st_mode & 0o077 == 0 and (tls / "ca.key").stat().st_mode & 0o077 == 0

    port = free_port()
    password = subprocess.run(["openssl", "rand", "-hex", "32"], capture_output=True, text=True,
                              check=True).stdout.strip()
    (tmp_path / "br-fleet-auth.conf").write_text(f"requirepass {password}\n")
    conf = (DEPLOY / "redis" / "br-fleet.conf").read_text()
    assert re.search(r"^port 0$", conf, flags=re.M), "no plaintext port"
    assert re.search(r"^maxmemory-policy noeviction$", conf, flags=re.M)
    conf = re.sub(r"^bind .*$", "bind 127.0.0.1", conf, flags=re.M)
    conf = re.sub(r"^tls-port 6380$", f"tls-port {port}", conf, flags=re.M)
    conf = conf.replace("/etc/redis/tls/", f"{tls}/").replace("/etc/redis/br-fleet-auth.conf",
                                                              str(tmp_path / "br-fleet-auth.conf"))
    (tmp_path / "br-fleet.conf").write_text(conf)
    (tmp_path / "redis.conf").write_text(
        f'daemonize no\nsave ""\ndir {tmp_path}\ninclude {tmp_path / "br-fleet.conf"}\n')
    proc = spawn(["redis-server", str(tmp_path / "redis.conf")], tmp_path / "redis.log")
    try:
        wait_for_port("127.0.0.1", port, timeout=20, proc=proc)
        yield port, password, tls / "ca.crt"
    finally:
        stop_pid(proc.pid)


def test_redis_speaks_only_tls_with_a_password(broker):
    port, password, ca = broker
    base = f"127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    assert redis.Redis.from_url(f"rediss://:{password}@{base}", socket_timeout=5).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(f"rediss://{base}", socket_timeout=5).ping()
    with pytest.raises(redis.AuthenticationError):  # WRONGPASS
        redis.Redis.from_url(f"rediss://:{'0' * 64}@{base}", socket_timeout=5).ping()
    with pytest.raises(redis.ConnectionError):  # plaintext on the TLS port
        redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5).ping()
    # the server certificate names the host, its IP and loopback, and chains to the CA
    context = ssl.create_default_context(cafile=str(ca))
    for name in ("br-coordinator.internal", "localhost", "127.0.0.1"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=name):
            pass
    with pytest.raises(ssl.SSLCertVerificationError), socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        context.wrap_socket(raw, server_hostname="elsewhere.example")


def _http(url: str, user: str | None = None, password: str | None = None) -> tuple[int, bytes]:
    request = Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except HTTPError as exc:
        return exc.code, b""


def test_flower_and_a_worker_from_the_example_files(broker, tmp_path):
    port, password, ca = broker
    flower_exe = Path(sys.executable).with_name("br-flower")
    celery_exe = Path(sys.executable).with_name("celery")
    if not flower_exe.exists() or not celery_exe.exists():
        pytest.skip("br-flower/celery are not installed beside this interpreter")
    unit = (DEPLOY / "systemd" / "br-flower.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, flags=re.M).group(1).split()
    assert exec_start[0] == "/opt/br-fleet/bin/br-flower"

    flower_port = free_port()
    env = _env_file(DEPLOY / "config" / "flower.env.example")
    env["CELERY_BROKER_URL"] = (env["CELERY_BROKER_URL"].replace("REPLACE_WITH_REDIS_PASSWORD", password)
                                .replace("127.0.0.1:6380", f"127.0.0.1:{port}")
                                .replace("/etc/br-fleet/tls/redis-ca.pem", str(ca)))
    flower_password = "f" * 48
    env["FLOWER_BASIC_AUTH"] = env["FLOWER_BASIC_AUTH"].replace("REPLACE_WITH_FLOWER_PASSWORD", flower_password)
    env["FLOWER_PORT"] = str(flower_port)
    env["FLOWER_DB"] = env["FLOWER_DB"].replace("/var/lib/br-flower", str(tmp_path))
    user = env["FLOWER_BASIC_AUTH"].split(":", 1)[0]
    base_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}

    # a worker that joins the way an agent does: agent.toml's broker URL + the password
    agent_broker = re.search(r'^broker = "([^"]+)"', (DEPLOY / "config" / "agent.toml.example").read_text(),
                             flags=re.M).group(1)
    agent_broker = (agent_broker.replace("rediss://", f"rediss://:{password}@", 1)
                    .replace("br-coordinator.internal:6380", f"127.0.0.1:{port}")
                    .replace("/etc/br-fleet/tls/redis-ca.pem", str(ca)))
    (tmp_path / "deploy_probe_app.py").write_text(
        "import os\nfrom celery import Celery\n"
        "app = Celery('probe', broker=os.environ['PROBE_BROKER'])\n"
        "app.conf.worker_send_task_events = True\n"
        "@app.task(name='probe.ping')\ndef ping():\n    return 'pong'\n")
    flower = spawn([str(flower_exe), *exec_start[1:]], tmp_path / "flower.log", env={**base_env, **env},
                   cwd=tmp_path)
    worker = spawn([str(celery_exe), "-A", "deploy_probe_app", "worker", "-P", "threads", "-c", "1",
                    "-n", "deploy-probe@%h", "-l", "WARNING"], tmp_path / "worker.log",
                   env={**base_env, "PROBE_BROKER": agent_broker}, cwd=tmp_path)
    try:
        wait_for_port("127.0.0.1", flower_port, timeout=30, proc=flower)
        assert _listening_addresses(flower_port) == {"0100007F"}, "Flower must listen on 127.0.0.1 only"
        url = f"http://127.0.0.1:{flower_port}"
        assert _http(f"{url}/api/workers")[0] == 401
        assert _http(f"{url}/")[0] == 401
        assert _http(f"{url}/api/workers", user, "wrong")[0] == 401
        deadline = time.monotonic() + 40
        workers = b""
        while time.monotonic() < deadline:
            status, workers = _http(f"{url}/api/workers?refresh=1", user, flower_password)
            assert status == 200
            if b"deploy-probe@" in workers:
                break
            time.sleep(1)
        assert b"deploy-probe@" in workers, (tmp_path / "worker.log").read_text()[-2000:]
        assert _http(f"{url}/", user, flower_password)[0] == 200
    finally:
        stop_pid(worker.pid)
        stop_pid(flower.pid)
    log = (tmp_path / "flower.log").read_text()
    assert password not in log and flower_password not in log
    # --persistent: the state went to FLOWER_DB (dbm files named after it)
    assert list(tmp_path.glob(Path(env["FLOWER_DB"]).name + "*")), log[-2000:]
