"""S3 backend configuration and error messages, without a server."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from s3transfer.utils import ChunksizeAdjuster

from br_common.storage import ObjectNotFound, S3Location, S3Storage, StorageError, StorageOptions, open_storage, \
    parse_storage_url
from br_common.storage.options import MiB
from br_common.storage.ratelimit import TransferBucket
from br_common.storage.s3 import transfer_config, upload_args
from br_common.storage.s3_errors import S3Target, translate
from br_common.storage.s3_session import client_config, sts_endpoint

SECRET = "wJalr+XUtnFEMI/K7MDENG"
URL = f"s3://bkt/backup?access-key=AKIDEXAMPLE&secret-access-key={SECRET}&endpoint=http://127.0.0.1:1"


def location(url: str = URL) -> S3Location:
    loc = parse_storage_url(url)
    assert isinstance(loc, S3Location)
    return loc


def test_client_config_retries_checksums_addressing():
    config = client_config(location(), StorageOptions())
    assert config.retries == {"mode": "standard", "max_attempts": 20}
    assert config.request_checksum_calculation == "when_supported"
    assert config.s3 == {"addressing_style": "path", "payload_signing_enabled": False}  # checksums guard bodies
    virtual = client_config(location("s3://bkt?force-path-style=false"), StorageOptions(retry_mode="adaptive"))
    assert virtual.s3["addressing_style"] == "virtual"
    assert virtual.retries["mode"] == "adaptive"


def test_transfer_config():
    config = transfer_config(StorageOptions(rate_limit=128 * MiB, multipart_threshold=32 * MiB, part_size=8 * MiB))
    assert (config.multipart_threshold, config.multipart_chunksize, config.max_bandwidth) == (32 * MiB, 8 * MiB,
                                                                                                128 * MiB)
    assert config.num_download_attempts == 20
    assert config.max_io_queue_size == 64  # chunks waiting for the disk: 16 MiB, not s3transfer's 250 MB


@pytest.mark.parametrize("rate", [None, 8 * MiB])
def test_the_manager_throttles_through_one_exact_bucket(rate):
    """s3transfer takes its bandwidth limiter at construction: the storage swaps in its own bucket
    (this fails loudly if a new s3transfer renames the attribute)."""
    storage = S3Storage(location(), StorageOptions(rate_limit=rate))
    limiter = storage._manager._bandwidth_limiter  # noqa: SLF001
    if rate is None:
        assert limiter is None
    else:
        bucket = limiter._leaky_bucket  # noqa: SLF001
        assert isinstance(bucket, TransferBucket) and bucket.bucket.rate == rate
    storage.close()


@pytest.mark.parametrize("size", [10 * MiB, 200 * 1024 * MiB, 5 * 1024 * 1024 * MiB])
def test_parts_stay_under_ten_thousand(size):
    part = ChunksizeAdjuster().adjust_chunksize(StorageOptions().part_size, size)
    assert -(-size // part) <= 10_000
    assert part >= 5 * MiB


def test_part_size_below_s3_minimum_is_refused():
    with pytest.raises(ValueError):
        StorageOptions(part_size=MiB)


def test_upload_args_carry_checksum_and_url_options():
    args = upload_args(location("s3://bkt?storage-class=STANDARD_IA&sse=aws:kms&sse-kms-key-id=k&acl=private"),
                       StorageOptions())
    assert args == {"ChecksumAlgorithm": "CRC32", "StorageClass": "STANDARD_IA", "ServerSideEncryption": "aws:kms",
                    "SSEKMSKeyId": "k", "ACL": "private"}
    assert upload_args(location("s3://bkt"), StorageOptions(checksum_algorithm="SHA256")) == {
        "ChecksumAlgorithm": "SHA256"}


def test_sts_endpoint_follows_s3_compatible_servers_only():
    assert sts_endpoint(location("s3://bkt?endpoint=http://minio:9000")) == "http://minio:9000"
    assert sts_endpoint(location("s3://bkt?endpoint=https://s3.vpce.amazonaws.com&provider=aws")) is None
    assert sts_endpoint(location("s3://bkt")) is None


def target(op: str = "upload", key: str = "backup/1/a.sst") -> S3Target:
    return S3Target(op, "bkt", key, f"s3://bkt/{key}", "http://127.0.0.1:1", [SECRET, "AKIDEXAMPLE"], 20)


def client_error(code: str, message: str = "", status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize("op, code, expected", [
    ("upload", "AccessDenied", "needs s3:PutObject on arn:aws:s3:::bkt/backup/1/a.sst"),
    ("check", "AccessDenied", "needs s3:ListBucket on arn:aws:s3:::bkt"),
    ("download", "403", "needs s3:GetObject on arn:aws:s3:::bkt/backup/1/a.sst"),
    ("upload", "NoSuchBucket", "bucket bkt does not exist"),
    ("upload", "SignatureDoesNotMatch", "credentials were rejected"),
    ("upload", "ExpiredToken", "credentials were rejected"),
    ("upload", "SlowDown", "after 20 attempts"),
    ("upload", "PermanentRedirect", "set region="),
    ("download", "InvalidObjectState", "archived"),
    ("upload", "InvalidRequest", "failed (InvalidRequest): bad thing"),
])
def test_client_errors_say_what_to_do(op, code, expected):
    error = translate(client_error(code, "bad thing"), target(op))
    assert isinstance(error, StorageError)
    assert expected in str(error)
    assert error.code == code
    assert "\n" not in str(error)


def test_not_found():
    error = translate(client_error("404", status=404), target("download"))
    assert isinstance(error, ObjectNotFound)
    assert str(error) == "s3://bkt/backup/1/a.sst does not exist"


def test_server_text_is_scrubbed_and_one_line():
    error = translate(client_error("Weird", f"line one\nkey {SECRET} and AKIDEXAMPLE " + "x" * 500), target())
    text = str(error)
    assert SECRET not in text and "AKIDEXAMPLE" not in text and "\n" not in text
    assert "***" in text and len(text) < 400


def test_other_errors():
    assert "no AWS credentials found" in str(translate(NoCredentialsError(), target()))
    unreachable = translate(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), target())
    assert "cannot reach http://127.0.0.1:1" in str(unreachable)
    missing = translate(FileNotFoundError(2, "No such file or directory", "/x.sst"), target())
    assert "No such file or directory (/x.sst)" in str(missing)


def test_unreachable_endpoint_is_a_storage_error():
    options = StorageOptions(max_attempts=1, connect_timeout=1)
    with open_storage(URL, options=options) as storage:
        assert isinstance(storage, S3Storage)
        with pytest.raises(StorageError, match="cannot reach http://127.0.0.1:1") as info:
            storage.exists("x")
    assert SECRET not in str(info.value)


def test_uri_never_carries_credentials():
    with open_storage(URL) as storage:
        assert storage.uri("1/a.sst") == "s3://bkt/backup/1/a.sst"
        assert storage.uri() == "s3://bkt/backup"
