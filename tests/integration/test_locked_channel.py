"""The locked-down task channel over real processes: a Redis that speaks only TLS and wants a
password (CA and server certificate made here with `cryptography`), one br-agent that trusts
one coordinator certificate, and `br` with its password in a file and its signing key in
BR_SIGNING_KEY, as docs/DEPLOY.md sets them up. Unsigned, foreign-signed and tampered tasks
reach the agent through the same Redis and are refused without running; the agent lives on.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from br_common import procs
from br_common.fleet import messages as m
from br_common.fleet import redis_client
from br_common.fleet.app import make_app, send
from br_common.fleet.config import FleetSettings
from br_common.fleet.queues import storage_queue
from br_common.fleet.registry import Registry
from br_common.fleet.signing import HEADER, Signer
from br_devcluster import cluster
from tests.fixtures.br_runner import run_br

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "p@ss/w:rd+" + uuid.uuid4().hex  # needs percent-encoding in a URL


@dataclass
class Channel:
    work: Path
    broker: str  # rediss://, no password (what goes in files and flags)
    full_url: str  # with the password, for the test's own clients
    password_file: Path
    key: Path
    cert: Path
    agent: subprocess.Popen
    agent_log: Path
    pd_address: str
    cluster_id: int

    @property
    def storage_queue(self) -> str:
        return storage_queue(self.cluster_id)

    def br_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BR_"))}
        return {**env, "BR_BROKER": self.broker, "BR_BROKER_PASSWORD_FILE": str(self.password_file),
                "BR_SIGNING_KEY": str(self.key), "BR_SIGNING_CERT": str(self.cert), **extra}


# --- certificates and keys ------------------------------------------------------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, public_key, issuer: str, signing_key, ca: bool = False) -> x509.Certificate:  # noqa: ANN001
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = (builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return builder.sign(signing_key, hashes.SHA256())


def _write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _pem_key(key) -> bytes:  # noqa: ANN001
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _tls_files(tls: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1/localhost: (ca, cert, key)."""
    tls.mkdir()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("br-fleet test CA", ca_key.public_key(), "br-fleet test CA", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert("localhost", server_key.public_key(), "br-fleet test CA", ca_key)
    return (_write(tls / "ca.crt", _pem_cert(ca)), _write(tls / "redis.crt", _pem_cert(server)),
            _write(tls / "redis.key", _pem_key(server_key), 0o600))


def _coordinator_key(keys: Path) -> tuple[Path, Path]:
    """RSA key + self-signed certificate, as docs/DEPLOY.md step 6 makes them with openssl."""
    keys.mkdir()
    key = rsa.generate_private_key(65537, 2048)
    cert = _cert("br-fleet coordinator", key.public_key(), "br-fleet coordinator", key, ca=True)
    return _write(keys / "coordinator.key", _pem_key(key), 0o600), _write(keys / "coordinator.crt", _pem_cert(cert))


# --- processes ------------------------------------------------------------------------------------
def _start_redis(work: Path, ca: Path, cert: Path, key: Path) -> tuple[subprocess.Popen, int]:
    port = procs.free_port()
    conf = work / "redis.conf"
    conf.write_text(f'daemonize no\nsave ""\nappendonly no\ndir {work}\nbind 127.0.0.1\nport 0\n'
                    f"tls-port {port}\ntls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\n"
                    f'tls-auth-clients no\nrequirepass "{PASSWORD}"\n')
    conf.chmod(0o600)
    proc = procs.spawn(["redis-server", str(conf)], work / "redis.log")
    procs.wait_for_port("127.0.0.1", port, timeout=20, proc=proc)
    return proc, port


def _agent_args(pd: str, store: str, broker: str, staging: Path, allowed: Path) -> list[str]:
    return [sys.executable, "-m", "br_agent.cli", "--store", store, "--pd", pd, "--broker", broker,
            "--staging-dir", str(staging), "--allow-destination", f"local://{allowed}", "--concurrency", "2",
            "--metrics-port", "0", "--store-wait", "30"]


def _agent_env(password_file: Path, trusted: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BR_")}
    return {**env, "PYTHONUNBUFFERED": "1", "BR_AGENT_BROKER_PASSWORD_FILE": str(password_file),
            "BR_AGENT_TRUSTED_COORDINATOR_KEYS": json.dumps([str(trusted)])}


def _wait_registered(client: redis.Redis, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        if any(a.pid == proc.pid for a in Registry(client).alive()):
            time.sleep(1.0)  # the Celery consumer comes up just after the first heartbeat
            return
        time.sleep(0.1)
    raise TimeoutError(log.read_text()[-3000:])


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Channel]:
    work = tmp_path_factory.mktemp("channel")
    ca, cert, key = _tls_files(work / "tls")
    signing_key, signing_cert = _coordinator_key(work / "keys")
    password_file = _write(work / "broker-password", (PASSWORD + "\n").encode(), 0o600)
    redis_proc, port = _start_redis(work, ca, cert, key)
    broker = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    full_url = broker.replace("rediss://", f"rediss://:{PASSWORD.replace('@', '%40').replace('/', '%2F')}@")
    data_dir = work / "cluster"
    agent = None
    try:
        state = cluster.up(data_dir, cluster.ClusterConfig(stores=1, replicas=1, regions=2)).state
        client = redis_client(full_url)
        store = state.by_role("store")[0].address
        log = work / "agent.log"
        agent = procs.spawn(_agent_args(state.pd_address, store, broker, work / "staging", work / "storage"), log,
                            env=_agent_env(password_file, signing_cert))
        _wait_registered(client, agent, log)
        yield Channel(work, broker, full_url, password_file, signing_key, signing_cert, agent, log, state.pd_address,
                      state.cluster_id)
    finally:
        if agent is not None:
            procs.stop_pid(agent.pid)
        if (data_dir / cluster.STATE_FILE).exists():
            cluster.down(data_dir)
        procs.stop_pid(redis_proc.pid)


def _br(channel: Channel, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_br(args, env=env or channel.br_env())


def _redis_values(client: redis.Redis) -> bytes:
    """Every string, list and hash value in Redis, concatenated (to look for secrets)."""
    out = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key) or b"")
        elif kind == b"list":
            out.extend(client.lrange(key, 0, -1))
        elif kind == b"hash":
            out.extend(client.hvals(key))
    return b"\n".join(out)


# --- tests ------------------------------------------------------------------------------------------
def test_signed_backup_over_tls_and_auth(channel: Channel) -> None:
    target = channel.work / "storage" / "b1"
    done = _br(channel, "backup", "raw", "--pd", channel.pd_address, "-s", f"local://{target}",
               "--log-file", str(channel.work / "br.log"))
    assert done.returncode == 0, done.stderr
    assert (target / "backupmeta").exists()
    outputs = done.stdout + done.stderr + (channel.work / "br.log").read_text() + channel.agent_log.read_text()
    assert PASSWORD not in outputs and "p%40ss" not in outputs
    assert "refused" not in channel.agent_log.read_text()
    cmdline = Path(f"/proc/{channel.agent.pid}/cmdline").read_bytes()
    assert PASSWORD.encode() not in cmdline and b"p%40ss" not in cmdline
    assert PASSWORD.encode() not in _redis_values(redis_client(channel.full_url))


def test_restore_checks_up_front_that_the_agent_trusts_its_key(channel: Channel) -> None:
    """As backup: a coordinator the agent would refuse fails before anything is read or sent."""
    other_key, other_cert = _coordinator_key(channel.work / "other-keys")
    restore = ("restore", "full", "--pd", channel.pd_address, "-s", f"local://{channel.work}/storage/b1")
    cases = {
        "runs only signed tasks: set BR_SIGNING_KEY": channel.br_env(BR_SIGNING_KEY="", BR_SIGNING_CERT=""),
        "does not trust this coordinator's key": channel.br_env(BR_SIGNING_KEY=str(other_key),
                                                               BR_SIGNING_CERT=str(other_cert)),
    }
    refusals = channel.agent_log.read_text().count("refused")
    for expected, env in cases.items():
        done = _br(channel, *restore, env=env)
        assert done.returncode == 1 and expected in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert channel.agent_log.read_text().count("refused") == refusals  # nothing reached the agent


def _lock_task(target: Path) -> m.AcquireLockTask:
    return m.AcquireLockTask(job_id="j-" + uuid.uuid4().hex[:8], storage=m.StorageSpec(url=f"local://{target}"),
                             lock_body="{}")


def _outcome(result) -> tuple[str, str]:  # noqa: ANN001 - AsyncResult
    result.get(timeout=60, propagate=False)
    return result.state, str(result.result)


def test_unsigned_forged_and_tampered_tasks_are_refused_and_the_agent_lives_on(channel: Channel) -> None:
    target = channel.work / "storage" / "refusals"
    queue = channel.storage_queue
    unsigned = make_app(channel.full_url, FleetSettings(broker=channel.full_url, signing_key=""))
    forger = make_app(channel.full_url, FleetSettings(broker=channel.full_url, signing_key=""))
    forger.signer = Signer(ed25519.Ed25519PrivateKey.generate())
    signed = make_app(channel.full_url, FleetSettings(broker=channel.full_url, signing_key=str(channel.key)))
    assert signed.signer is not None

    refused = {"unsigned": send(unsigned, m.ACQUIRE_LOCK, _lock_task(target), queue=queue),
               "signed by an untrusted key": send(forger, m.ACQUIRE_LOCK, _lock_task(target), queue=queue)}
    # tampered: a valid signature over one payload, sent with another
    task_id = uuid.uuid4().hex
    header = signed.signer.header(m.ACQUIRE_LOCK, task_id, [_lock_task(target).model_dump(mode="json")])
    other = _lock_task(channel.work / "storage" / "elsewhere").model_dump(mode="json")
    refused["bad signature"] = signed.send_task(m.ACQUIRE_LOCK, args=[other], queue=queue, task_id=task_id,
                                                headers={HEADER: header})
    # a header claiming an in-process call (which is not checked) changes nothing: the worker sets it
    refused["unsigned task"] = unsigned.send_task(m.ACQUIRE_LOCK, args=[_lock_task(target).model_dump(mode="json")],
                                                  queue=queue, headers={"called_directly": True})
    for reason, result in refused.items():
        state, text = _outcome(result)
        assert state == "FAILURE" and f"refused: {reason}" in text, (reason, state, text)
    assert not target.exists() and not (channel.work / "storage" / "elsewhere").exists()  # no body ran
    log = channel.agent_log.read_text()
    assert log.count(f"[br_common.fleet.signing] task {m.ACQUIRE_LOCK}[") == 4, log[-3000:]
    assert "Traceback" not in log

    assert channel.agent.poll() is None
    state, text = _outcome(send(signed, m.ACQUIRE_LOCK, _lock_task(target), queue=queue))
    assert state == "SUCCESS" and "acquired" in text, text
    assert (target / "backup.lock").exists()


def test_a_replayed_signed_task_is_refused(channel: Channel) -> None:
    """A signed message copied off the broker and sent again (same id, signature and body), even
    after its first run finished, is refused by the agent that received it: the id is the nonce."""
    signed = make_app(channel.full_url, FleetSettings(broker=channel.full_url, signing_key=str(channel.key)))
    target = channel.work / "storage" / "replayed"
    task_id, body = uuid.uuid4().hex, [_lock_task(target).model_dump(mode="json")]
    header = signed.signer.header(m.ACQUIRE_LOCK, task_id, body)
    first = signed.send_task(m.ACQUIRE_LOCK, args=body, queue=channel.storage_queue, task_id=task_id,
                             headers={HEADER: header})
    assert _outcome(first)[0] == "SUCCESS"
    first.forget()  # the replay's outcome is what the backend holds next
    (target / "backup.lock").unlink()  # had the copy run again, it would take the lock afresh
    copier = make_app(channel.full_url, FleetSettings(broker=channel.full_url, signing_key=""))  # no cached result
    replay = copier.send_task(m.ACQUIRE_LOCK, args=body, queue=channel.storage_queue, task_id=task_id,
                              headers={HEADER: header})
    state, text = _outcome(replay)
    assert state == "FAILURE" and f"refused: replayed task {task_id}" in text, text
    assert not (target / "backup.lock").exists()


def test_broker_mistakes_are_one_line_errors(channel: Channel) -> None:
    wrong = _write(channel.work / "wrong-password", b"not-the-password\n", 0o600)
    backup = ("backup", "raw", "--pd", channel.pd_address, "-s", f"local://{channel.work}/storage/never")
    no_ca = channel.broker.split("?", 1)[0]  # system CAs: the test CA is not among them
    cases = {
        "refused the connection": channel.br_env(BR_BROKER_PASSWORD_FILE=str(wrong)),
        "TLS with the broker": channel.br_env(BR_BROKER=no_ca),
        "runs only signed tasks: set BR_SIGNING_KEY": channel.br_env(BR_SIGNING_KEY="", BR_SIGNING_CERT=""),
    }
    for expected, env in cases.items():
        done = _br(channel, *backup, env=env)
        assert done.returncode == 1 and expected in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
        assert "not-the-password" not in done.stderr and PASSWORD not in done.stderr
    in_argv = _br(channel, *backup, "--broker", channel.full_url)
    assert in_argv.returncode == 1 and "must not contain the Redis password" in in_argv.stderr
    assert PASSWORD not in in_argv.stderr and "p%40ss" not in in_argv.stderr

    store = cluster.load_state(channel.work / "cluster").by_role("store")[0].address
    agent = subprocess.run(_agent_args(channel.pd_address, store, channel.broker, channel.work / "staging-2",
                                       channel.work / "storage"),
                           capture_output=True, text=True, timeout=120, env=_agent_env(wrong, channel.cert))
    assert agent.returncode != 0 and "refused the connection" in agent.stderr, agent.stderr
    assert "Traceback" not in agent.stderr and "not-the-password" not in agent.stderr
