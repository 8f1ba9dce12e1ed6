"""Where S3 credentials come from: instance profile (IMDSv2), shared-file profile, STS AssumeRole.

IAM is enforced on moto in these tests, so an operation that succeeds proves that the
intended credentials (and no others) reached the S3 server.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest

from br_common.storage import S3Credentials, StorageError, open_storage
from br_common.storage.s3_session import make_session
from br_common.storage.schemes import parse_storage_url
from br_common.storage.url import S3Location
from br_devcluster.services import bucket_policy, create_user, enforce_iam, instance_profile_env
from tests.fixtures.services import S3Endpoint

pytestmark = pytest.mark.integration

BACKUP_ACTIONS = ["s3:ListBucket", "s3:PutObject", "s3:AbortMultipartUpload"]

# runs in a child whose environment holds no AWS keys: only the IMDS can provide credentials
AGENT_SCRIPT = """
import json, sys, boto3
from br_common.storage import StorageError, open_storage
creds = boto3.Session().get_credentials()
out = {"method": creds.method if creds else None}
try:
    with open_storage(sys.argv[1]) as storage:
        out["created"] = storage.create_exclusive("backup.lock", b"agent")
        storage.put_bytes("backupmeta", b"from-agent")
        out["keys"] = [o.key for o in storage.list()]
except StorageError as exc:
    out["error"] = str(exc)
print(json.dumps(out))
"""


def run_agent(url: str, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", AGENT_SCRIPT, url], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_instance_profile_credentials_reach_s3(moto_s3: S3Endpoint, imds_endpoint):
    keys = create_user(moto_s3.endpoint, "agent", bucket_policy(moto_s3.bucket, BACKUP_ACTIONS))
    endpoint = imds_endpoint({"AccessKeyId": keys.access_key.get_secret_value(),
                              "SecretAccessKey": keys.secret_access_key.get_secret_value()})
    enforce_iam(moto_s3.endpoint)
    url = moto_s3.url("", with_keys=False)
    env = instance_profile_env(endpoint, {"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "AKIAFROMENV",
                                          "AWS_SECRET_ACCESS_KEY": "must-not-be-used", "HOME": "/nonexistent"})
    assert "AWS_ACCESS_KEY_ID" not in env
    result = run_agent(url, env)
    assert result == {"method": "iam-role", "created": True, "keys": ["backup.lock", "backupmeta"]}


def test_instance_profile_with_wrong_keys_is_denied(moto_s3: S3Endpoint, imds_endpoint):
    """Teeth for the test above: the S3 server does check the IMDS-provided keys."""
    create_user(moto_s3.endpoint, "agent", bucket_policy(moto_s3.bucket, BACKUP_ACTIONS))
    endpoint = imds_endpoint({"AccessKeyId": "AKIAUNKNOWNUNKNOWN", "SecretAccessKey": "nope"})
    enforce_iam(moto_s3.endpoint)
    result = run_agent(moto_s3.url("", with_keys=False), instance_profile_env(endpoint, {"PATH": "/usr/bin:/bin"}))
    assert result["method"] == "iam-role"
    assert "credentials were rejected" in result["error"]


def test_no_credentials_anywhere_is_a_clear_error(moto_s3: S3Endpoint):
    env = instance_profile_env("http://127.0.0.1:1", {"PATH": "/usr/bin:/bin"})
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    result = run_agent(moto_s3.url("", with_keys=False), env)
    assert result["method"] is None
    assert "no AWS credentials found" in result["error"]


def test_shared_file_profile(moto_s3: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    keys = create_user(moto_s3.endpoint, "profiled", bucket_policy(moto_s3.bucket, BACKUP_ACTIONS))
    enforce_iam(moto_s3.endpoint)
    shared = tmp_path / "credentials"
    shared.write_text(f"[backup]\naws_access_key_id = {keys.access_key.get_secret_value()}\n"
                      f"aws_secret_access_key = {keys.secret_access_key.get_secret_value()}\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    with open_storage(moto_s3.url("", with_keys=False, profile="backup")) as storage:
        storage.put_bytes("backupmeta", b"m")
        assert storage.exists("backupmeta")
    with pytest.raises(StorageError, match="missing-profile"), \
            open_storage(moto_s3.url("", with_keys=False, profile="missing-profile")):
        pass


def _role(endpoint: str, bucket: str) -> tuple[str, S3Credentials]:
    """A role allowed to back up, and a user allowed only to assume it."""
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": "*"}}]}
    arn = iam.create_role(RoleName="br-backup", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName="br-backup", PolicyName="backup",
                        PolicyDocument=json.dumps(bucket_policy(bucket, BACKUP_ACTIONS)))
    source = create_user(endpoint, "source", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": arn}]})
    return arn, source


def test_role_arn_assumes_the_role(moto_s3: S3Endpoint):
    arn, source = _role(moto_s3.endpoint, moto_s3.bucket)
    enforce_iam(moto_s3.endpoint)
    with_source = moto_s3.model_copy(update={"access_key": source.access_key.get_secret_value(),
                                             "secret_key": source.secret_access_key.get_secret_value()})
    url = with_source.url("", **{"role-arn": arn, "external-id": "ext-1"})
    location = parse_storage_url(url)
    assert isinstance(location, S3Location)
    credentials = make_session(location).get_credentials()
    assert credentials.method == "assume-role"
    assert credentials.access_key != source.access_key.get_secret_value()
    with open_storage(location) as storage:
        assert storage.create_exclusive("backup.lock", b"x")
        assert [o.key for o in storage.list()] == ["backup.lock"]
    # the source user alone may not write: the role's permissions were what made it work
    with open_storage(with_source.url("")) as direct, pytest.raises(StorageError, match="access denied"):
        direct.put_bytes("k", b"v")


def test_url_keys_win_over_environment(moto_s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch):
    keys = create_user(moto_s3.endpoint, "explicit", bucket_policy(moto_s3.bucket, BACKUP_ACTIONS))
    enforce_iam(moto_s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "environment")
    url = (f"s3://{moto_s3.bucket}?endpoint={moto_s3.endpoint}"
           f"&access-key={quote(keys.access_key.get_secret_value(), safe='')}"
           f"&secret-access-key={quote(keys.secret_access_key.get_secret_value(), safe='')}")
    with open_storage(url) as storage:
        storage.put_bytes("k", b"v")
