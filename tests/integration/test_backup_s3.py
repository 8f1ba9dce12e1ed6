"""`br backup` against moto S3: Object Lock, the minimum IAM policy through an instance profile
(IMDS), and URL keys sent sealed with -c that never show in Redis, logs, Flower or ps."""
from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import redis
from botocore.config import Config
from botocore.exceptions import ClientError

from br_devcluster import cluster
from br_devcluster.load import KeyGen, LoadSpec
from br_devcluster.services import bucket_policy, create_lock_bucket, create_user, enforce_iam, \
    instance_profile_env, start_flower
from tests.fixtures.devcluster import DevCluster
from tests.integration.test_backup_support import AgentFleet, files_checksum, lift_iam, loaded_cluster, \
    moto_url, read_backupmeta, run_br, s3_admin, start_br

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KEYS = 8000
GEN = KeyGen(LoadSpec(keys=KEYS, value_size=100, seed=3))
MINIMUM = ["s3:ListBucket", "s3:PutObject", "s3:AbortMultipartUpload"]


@pytest.fixture(scope="module")
def dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    config = cluster.ClusterConfig(stores=3, replicas=1, regions=6)
    with loaded_cluster(tmp_path_factory.mktemp("cluster-s3"), config, GEN) as handle:
        yield handle


def _agents(fleet: list[AgentFleet], dc: DevCluster, broker: str, work: Path, env: dict[str, str]) -> AgentFleet:
    fleet.append(AgentFleet(dc, broker, work / "agents", env=env))
    return fleet[-1].start_all()


def test_object_lock_bucket_with_default_retention(dc, agent_fleets, moto_s3, imds_endpoint, redis_url,  # noqa: ANN001
                                                   tmp_path: Path) -> None:
    create_lock_bucket(moto_s3.endpoint, "br-locked", days=1)
    imds = imds_endpoint({"AccessKeyId": "testing", "SecretAccessKey": "testing"})
    _agents(agent_fleets, dc, redis_url, tmp_path, instance_profile_env(imds))
    done = run_br("backup", "raw", "--pd", dc.pd_address, "-s", moto_url(moto_s3.endpoint, "br-locked", "b1"),
                  broker=redis_url)
    assert done.returncode == 0, done.stderr
    admin = s3_admin(moto_s3.endpoint)
    meta = read_backupmeta(admin, "br-locked", "b1")
    assert files_checksum(meta) == dc.kv.checksum(ts=meta.end_version)
    bare = boto3.client("s3", endpoint_url=moto_s3.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing",
                        config=Config(request_checksum_calculation="when_required"))
    with pytest.raises(ClientError):  # the bucket does refuse PUTs without a checksum: ours carried one
        bare.put_object(Bucket="br-locked", Key="b1/probe", Body=b"x")


def test_minimum_iam_policy_through_the_instance_profile(dc, agent_fleets, moto_s3, imds_endpoint, redis_url,  # noqa: ANN001
                                                         tmp_path: Path) -> None:
    user = create_user(moto_s3.endpoint, "br-backup", bucket_policy(moto_s3.bucket, MINIMUM))
    imds = imds_endpoint({"AccessKeyId": user.access_key.get_secret_value(),
                          "SecretAccessKey": user.secret_access_key.get_secret_value()})
    enforce_iam(moto_s3.endpoint)
    _agents(agent_fleets, dc, redis_url, tmp_path, instance_profile_env(imds))
    url = moto_url(moto_s3.endpoint, moto_s3.bucket, "")
    done = run_br("backup", "raw", "--pd", dc.pd_address, "-s", url, broker=redis_url)
    assert done.returncode == 0, done.stderr
    again = run_br("backup", "raw", "--pd", dc.pd_address, "-s", url, "--compression", "lz4", broker=redis_url)
    assert again.returncode == 1 and "already holds a complete backup" in again.stderr  # via ListBucket only
    as_user = boto3.client("s3", endpoint_url=moto_s3.endpoint, region_name="us-east-1",
                           aws_access_key_id=user.access_key.get_secret_value(),
                           aws_secret_access_key=user.secret_access_key.get_secret_value())
    with pytest.raises(ClientError, match="AccessDenied"):  # the policy really is the minimum
        as_user.get_object(Bucket=moto_s3.bucket, Key="backupmeta")
    lift_iam(moto_s3.endpoint)
    meta = read_backupmeta(s3_admin(moto_s3.endpoint), moto_s3.bucket, "")
    assert files_checksum(meta) == dc.kv.checksum(ts=meta.end_version)
    assert meta.files and all(f.total_kvs for f in meta.files)


def _redis_dump(url: str) -> bytes:
    client = redis.Redis.from_url(url)
    out = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        out.append(key)
        if kind == "string":
            out.append(client.get(key) or b"")
        elif kind == "hash":
            out.extend(b"%s=%s" % kv for kv in client.hgetall(key).items())
        elif kind == "list":
            out.extend(client.lrange(key, 0, -1))
        elif kind == "set":
            out.extend(client.smembers(key))
        elif kind == "zset":
            out.extend(m for m, _ in client.zrange(key, 0, -1, withscores=True))
    return b"\n".join(out)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _flower(url: str, path: str) -> object:
    with urllib.request.urlopen(url + path, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.mark.parametrize("given", ["in the URL", "through @env"])
def test_url_keys_sent_sealed_never_show_in_redis_logs_flower_or_ps(dc, agent_fleets, moto_s3, redis_url,  # noqa: ANN001
                                                                    tmp_path: Path, given: str) -> None:
    user = create_user(moto_s3.endpoint, "br-keys", bucket_policy(moto_s3.bucket, MINIMUM))
    access, secret = user.access_key.get_secret_value(), user.secret_access_key.get_secret_value()
    enforce_iam(moto_s3.endpoint)
    flower = start_flower(tmp_path / "flower", redis_url)
    try:
        no_credentials = {k: v for k, v in instance_profile_env("http://127.0.0.1:9").items()
                          if k != "AWS_EC2_METADATA_SERVICE_ENDPOINT"} | {"AWS_EC2_METADATA_DISABLED": "true"}
        agents = _agents(agent_fleets, dc, redis_url, tmp_path, no_credentials)  # only the sealed keys work
        deadline = time.monotonic() + 30
        while len(_flower(flower.url, "/api/workers?refresh=1")) < 3 and time.monotonic() < deadline:
            time.sleep(0.3)
        log_file = tmp_path / "br.log"
        url = moto_url(moto_s3.endpoint, moto_s3.bucket, "", (access, secret))
        env = os.environ | {"BR_TEST_STORAGE": url}
        storage = url if given == "in the URL" else "@env:BR_TEST_STORAGE"
        proc = start_br("backup", "raw", "--pd", dc.pd_address, "-s", storage, "-c", "--ratelimit", "4",
                        "--log-file", str(log_file), "--log-level", "debug", broker=redis_url,
                        log_path=tmp_path / "br.out", env=env)
        cmdlines = []
        # br re-executes itself without the keys first thing; the interpreter's start before
        # that (~0.1 s) is the one window, documented: sample from the re-exec on (@env has none)
        while given == "in the URL" and proc.poll() is None and b"@fd:" not in _cmdline(proc.pid):
            time.sleep(0.01)
        while proc.poll() is None:
            try:
                cmdlines.append(Path(f"/proc/{proc.pid}/cmdline").read_bytes())
            except OSError:
                break
            time.sleep(0.1)
        assert proc.wait(timeout=180) == 0, (tmp_path / "br.out").read_text()
        tasks = {}
        while time.monotonic() < deadline + 30 and len(tasks) < 3:
            tasks = _flower(flower.url, "/api/tasks")
            time.sleep(0.3)
        assert any("backup job=" in json.dumps(t) for t in tasks.values())  # Flower does see the tasks
        flower_text = json.dumps(tasks)
    finally:
        flower.stop()
    places = {"redis": _redis_dump(redis_url), "log file": log_file.read_bytes(),
              "br output": (tmp_path / "br.out").read_bytes(), "flower": flower_text.encode(),
              "ps": b"\n".join(cmdlines)}
    places |= {f"agent {sid} log": agents.log(sid).encode() for sid in agents.procs}
    for where, blob in places.items():
        assert secret.encode() not in blob, f"secret key found in {where}"
        assert access.encode() not in blob, f"access key found in {where}"
    samples = [c for c in cmdlines if c]  # an exiting process shows an empty cmdline
    assert samples and all((b"@fd:" if given == "in the URL" else b"@env:") in c for c in samples)
    lift_iam(moto_s3.endpoint)
    meta = read_backupmeta(s3_admin(moto_s3.endpoint), moto_s3.bucket, "")
    assert files_checksum(meta) == dc.kv.checksum(ts=meta.end_version)
