"""Admin-side S3 helpers for the local test servers (bucket creation with readiness retries)."""
from __future__ import annotations

import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from br_devcluster.services.handle import ServiceError

TEST_REGION = "us-east-1"


def admin_client(endpoint: str, access_key: str = "testing", secret_key: str = "testing"):
    """A path-style S3 client for a local server (explicit keys: the environment's are not used)."""
    return boto3.client("s3", endpoint_url=endpoint, region_name=TEST_REGION, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key,
                        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3}))


def create_bucket(endpoint: str, bucket: str, *, access_key: str = "testing", secret_key: str = "testing",
                  object_lock: bool = False, timeout: float = 20.0) -> None:
    """Create bucket, retrying while the server finishes starting (its port opens before it serves)."""
    client = admin_client(endpoint, access_key, secret_key)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=object_lock)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return
            last: Exception = exc
        except BotoCoreError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise ServiceError(f"cannot create bucket {bucket} on {endpoint}: {last}")
        time.sleep(0.2)
