"""moto's S3 server (in-memory S3, IAM and STS on one port) with the admin calls tests need.

IAM is not enforced until enforce_iam(): set up buckets and users first, then enforce.
reset() wipes all state and lifts enforcement again.
"""
from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import boto3

from br_common.storage.url import S3Credentials
from br_devcluster.services._launch import HOST, pick_port, start_and_wait
from br_devcluster.services.handle import ServiceError, ServiceHandle
from br_devcluster.services.s3_admin import TEST_REGION, admin_client, create_bucket

ADMIN_KEY = "testing"


def start_moto(work_dir: Path, *, port: int | None = None) -> ServiceHandle:
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    port = pick_port(port)
    args = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    log_path = work_dir / "moto.log"
    pid = start_and_wait("moto", args, log_path, port, cwd=work_dir)
    return ServiceHandle(name="moto", pid=pid, address=f"{HOST}:{port}", url=f"http://{HOST}:{port}",
                         log_path=log_path, args=args, data_dir=work_dir, stop_timeout=5.0)


def reset(endpoint: str) -> None:
    """Wipe every bucket, user and key; IAM is no longer enforced."""
    _post(endpoint, "/moto-api/reset", b"")
    _post(endpoint, "/moto-api/reset-auth", b"inf")


def enforce_iam(endpoint: str) -> None:
    """From now on every request is checked against the caller's IAM policies."""
    _post(endpoint, "/moto-api/reset-auth", b"0")


def create_lock_bucket(endpoint: str, bucket: str, *, days: int = 1, mode: str = "GOVERNANCE") -> None:
    """A bucket with Object Lock and a default retention (moto then refuses PUTs without a checksum)."""
    create_bucket(endpoint, bucket, object_lock=True)
    admin_client(endpoint).put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={"ObjectLockEnabled": "Enabled",
                                 "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}}})


def bucket_policy(bucket: str, actions: list[str]) -> dict:
    """An identity policy allowing `actions` on the bucket and every object in it."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": actions,
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}


def create_user(endpoint: str, name: str, policy: dict) -> S3Credentials:
    """An IAM user with one inline policy; returns its new access key (create before enforce_iam)."""
    iam = boto3.client("iam", endpoint_url=endpoint, region_name=TEST_REGION, aws_access_key_id=ADMIN_KEY,
                       aws_secret_access_key=ADMIN_KEY)
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return S3Credentials(access_key=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"])


def _post(endpoint: str, path: str, body: bytes) -> None:
    request = urllib.request.Request(endpoint + path, data=body, method="POST",
                                     headers={"Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceError(f"moto admin call {path} on {endpoint} failed: {exc}") from None
