"""The S3 backend against real servers (SeaweedFS and moto): multipart, integrity headers,
Object Lock and the seed's minimum IAM policies (the shared promises: test_storage_contract)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from br_common.storage import S3Storage, StorageError, StorageOptions, open_storage
from br_common.storage.options import MiB
from br_devcluster.services import admin_client, bucket_policy, create_lock_bucket, create_user, enforce_iam
from tests.fixtures.services import S3Endpoint

pytestmark = pytest.mark.integration

SMALL_PARTS = StorageOptions(multipart_threshold=5 * MiB, part_size=5 * MiB)
BIG = 11 * MiB + 123  # three parts of SMALL_PARTS
WRITE_OPS = {"PutObject", "UploadPart"}


@pytest.fixture(params=["seaweedfs", "moto"])
def server(request: pytest.FixtureRequest) -> S3Endpoint:
    fixture = "seaweedfs_s3" if request.param == "seaweedfs" else "moto_s3"
    return request.getfixturevalue(fixture)


@pytest.fixture
def storage(server: S3Endpoint) -> Iterator[S3Storage]:
    opened = open_storage(server.url(), options=SMALL_PARTS)
    assert isinstance(opened, S3Storage)
    with opened:
        yield opened


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.sst"
    path.write_bytes(os.urandom(BIG))
    return path


class HeaderLog:
    """Headers of every request the storage's client sends, by operation name."""

    def __init__(self, storage: S3Storage) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        storage.client.meta.events.register("before-send.s3", self._record)

    def _record(self, request, event_name: str, **kwargs) -> None:  # botocore: before-send.s3.<Operation>
        operation = event_name.rsplit(".", 1)[-1]
        self.sent.append((operation, {k.lower(): v for k, v in request.headers.items()}))

    def writes(self) -> list[tuple[str, dict[str, str]]]:
        return [(op, headers) for op, headers in self.sent if op in WRITE_OPS]


def has_integrity_header(headers: dict[str, str]) -> bool:
    return any(k.startswith("x-amz-checksum-") for k in headers) or "content-md5" in headers \
        or "x-amz-trailer" in headers



def test_multipart_round_trip_with_checksummed_parts(storage: S3Storage, server: S3Endpoint, big_file: Path,
                                                     tmp_path: Path):
    log = HeaderLog(storage)
    storage.put_file("1/big.sst", big_file)
    parts = [headers for op, headers in log.writes() if op == "UploadPart"]
    assert len(parts) == 3
    assert all(has_integrity_header(h) for h in parts)
    etag = admin_client(server.endpoint).head_object(Bucket=server.bucket, Key=f"{storage.location.prefix}/1/big.sst")
    assert etag["ETag"].strip('"').endswith("-3")  # really a multipart object
    storage.get_file("1/big.sst", tmp_path / "back.sst")
    assert (tmp_path / "back.sst").read_bytes() == big_file.read_bytes()
    assert storage.get_bytes("1/big.sst") == big_file.read_bytes()


def test_every_put_carries_a_checksum(storage: S3Storage, tmp_path: Path):
    log = HeaderLog(storage)
    small = tmp_path / "s"
    small.write_bytes(b"x" * 100)
    storage.put_file("a", small)
    storage.put_bytes("b", b"y")
    assert storage.create_exclusive("c", b"z")
    writes = log.writes()
    assert [op for op, _ in writes] == ["PutObject"] * 3
    assert all(has_integrity_header(h) for _, h in writes)
    assert all("x-amz-checksum-crc32" in h for _, h in writes)  # http endpoint: header, not trailer






def test_missing_bucket(server: S3Endpoint):
    url = server.url().replace(f"s3://{server.bucket}/", "s3://no-such-bucket-x/")
    with open_storage(url) as storage, pytest.raises(StorageError, match="no-such-bucket-x"):
        storage.put_bytes("k", b"v")


def test_rate_limited_round_trip(server: S3Endpoint, big_file: Path, tmp_path: Path):
    options = StorageOptions(multipart_threshold=5 * MiB, part_size=5 * MiB, rate_limit=512 * MiB)
    with open_storage(server.url(), options=options) as storage:
        storage.put_file("big", big_file)
        storage.get_file("big", tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == big_file.read_bytes()


# --- moto only: Object Lock and IAM ---------------------------------------------------------

LOCK_BUCKET = "br-lock"


def test_object_lock_bucket_accepts_our_writes(moto_s3: S3Endpoint, big_file: Path):
    create_lock_bucket(moto_s3.endpoint, LOCK_BUCKET)
    lock = moto_s3.model_copy(update={"bucket": LOCK_BUCKET})
    with open_storage(lock.url(), options=SMALL_PARTS) as storage:
        assert isinstance(storage, S3Storage)
        log = HeaderLog(storage)
        storage.put_bytes("backupmeta", b"m")
        storage.put_file("1/big.sst", big_file)
        assert storage.create_exclusive("backup.lock", b"l")
        assert all(has_integrity_header(h) for _, h in log.writes())
        assert {o.key for o in storage.list()} == {"backupmeta", "1/big.sst", "backup.lock"}


def test_object_lock_bucket_rejects_a_put_without_checksum(moto_s3: S3Endpoint):
    """The test's teeth: the same server refuses a PUT that carries no integrity header."""
    create_lock_bucket(moto_s3.endpoint, LOCK_BUCKET)
    plain = boto3.client("s3", endpoint_url=moto_s3.endpoint, region_name="us-east-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing",
                         config=Config(request_checksum_calculation="when_required"))
    with pytest.raises(ClientError) as info:
        plain.put_object(Bucket=LOCK_BUCKET, Key="plain", Body=b"no checksum")
    assert "Content-MD5" in info.value.response["Error"]["Message"]


BACKUP_ACTIONS = ["s3:ListBucket", "s3:PutObject", "s3:AbortMultipartUpload"]
RESTORE_ACTIONS = ["s3:ListBucket", "s3:GetObject"]


def test_minimum_policies(moto_s3: S3Endpoint, big_file: Path, tmp_path: Path):
    """Backup needs only ListBucket+PutObject+AbortMultipartUpload, restore only ListBucket+GetObject.

    The storage sits at the bucket's root and listings use prefixes without '/': moto 5.2.1
    (unlike AWS and SeaweedFS) rejects the signature of a ListObjectsV2 whose Prefix holds '/'
    once IAM is enforced.
    """
    endpoint, bucket = moto_s3.endpoint, moto_s3.bucket
    backup_keys = create_user(endpoint, "backup", bucket_policy(bucket, BACKUP_ACTIONS))
    restore_keys = create_user(endpoint, "restore", bucket_policy(bucket, RESTORE_ACTIONS))
    enforce_iam(endpoint)

    def url(keys) -> str:
        return moto_s3.model_copy(update={"access_key": keys.access_key.get_secret_value(),
                                          "secret_key": keys.secret_access_key.get_secret_value()}).url("")

    with open_storage(url(backup_keys), options=SMALL_PARTS) as backup:
        assert backup.create_exclusive("backup.lock", b"job-1") is True
        assert backup.create_exclusive("backup.lock", b"job-2") is False
        assert backup.holds("backup.lock", b"job-1")  # recognised without s3:GetObject
        backup.put_file("1/big.sst", big_file)
        backup.put_bytes("backupmeta", b"meta")
        assert backup.exists("backupmeta") and not backup.exists("checkpoint")
        assert [o.key for o in backup.list()] == ["1/big.sst", "backup.lock", "backupmeta"]
        with pytest.raises(StorageError, match="needs s3:GetObject") as denied:
            backup.get_bytes("backupmeta")
        assert denied.value.code in ("AccessDenied", "403")

    with open_storage(url(restore_keys), options=SMALL_PARTS) as restore:
        assert [o.key for o in restore.list("1")] == ["1/big.sst"]
        assert restore.exists("backupmeta")
        assert restore.get_bytes("backupmeta") == b"meta"
        restore.get_file("1/big.sst", tmp_path / "big.sst")
        assert (tmp_path / "big.sst").read_bytes() == big_file.read_bytes()
        with pytest.raises(StorageError, match="needs s3:PutObject"):
            restore.put_bytes("x", b"y")


def test_rejected_secret_is_never_echoed(moto_s3: S3Endpoint):
    create_user(moto_s3.endpoint, "backup", bucket_policy(moto_s3.bucket, BACKUP_ACTIONS))
    enforce_iam(moto_s3.endpoint)
    secret = "Wrong+Secret/Value1234"
    bad = moto_s3.model_copy(update={"access_key": "AKIAWRONGWRONG", "secret_key": secret})
    with open_storage(bad.url(), options=StorageOptions(max_attempts=2)) as storage:
        with pytest.raises(StorageError) as info:
            storage.put_bytes("k", b"v")
    text = str(info.value)
    assert secret not in text and "AKIAWRONGWRONG" not in text and "\n" not in text
    assert "credentials were rejected" in text or "access denied" in text
