"""The S3 backend: boto3 client + s3transfer TransferManager (multipart, parallel parts, rate limit).

Every write carries an x-amz-checksum-* header (whole PUTs and each multipart part), so
Object-Lock buckets accept it and S3 verifies the bytes. Only the seed's minimum IAM actions
are used: backup needs s3:ListBucket, s3:PutObject, s3:AbortMultipartUpload (exists() lists
instead of HeadObject); restore needs s3:ListBucket, s3:GetObject.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from botocore.exceptions import ClientError
from s3transfer.bandwidth import BandwidthLimiter
from s3transfer.manager import TransferConfig, TransferManager
from s3transfer.subscribers import BaseSubscriber
from s3transfer.utils import ChunksizeAdjuster

from br_common.storage.base import BAD_DIGEST, ExternalStorage, StorageError, StoredObject, check_key, check_prefix
from br_common.storage.hashing import HashingWriter, sha256_of
from br_common.storage.options import StorageOptions
from br_common.storage.ratelimit import TokenBucket, TransferBucket
from br_common.storage.s3_errors import S3Target, translate
from br_common.storage.s3_session import make_client
from br_common.storage.url import S3Location

CONFLICT_RETRIES = 5  # AWS answers 409 ConditionalRequestConflict while a racing conditional PUT runs


class S3Storage(ExternalStorage):
    @classmethod
    def open(cls, location: S3Location, options: StorageOptions) -> "S3Storage":
        return cls(location, options)

    def __init__(self, location: S3Location, options: StorageOptions | None = None) -> None:
        self.location = location
        self.options = options or StorageOptions()
        self._secrets = location.credentials.secret_values() if location.credentials else []
        with self._errors("connect", ""):
            self.client = make_client(location, self.options)
        self._manager = limited(TransferManager(self.client, transfer_config(self.options)), self.options.rate_limit)
        self.extra_args = upload_args(location, self.options)
        # s3transfer has no If-None-Match: the client adds it to the PUT or the multipart
        # completion of every key being uploaded by put_file_exclusive
        self._exclusive: set[str] = set()
        self._exclusive_lock = threading.Lock()
        for operation in ("PutObject", "CompleteMultipartUpload"):
            self.client.meta.events.register(f"before-parameter-build.s3.{operation}", self._if_none_match)

    def uri(self, key: str = "") -> str:
        return f"{self.location.root_uri()}/{key}" if key else self.location.root_uri()

    def put_file(self, key: str, path: str | Path) -> None:
        with self._errors("upload", key):
            self._manager.upload(str(path), self.location.bucket, self._full(key),
                                 extra_args=dict(self.extra_args)).result()

    def put_file_exclusive(self, key: str, path: str | Path, sha256: bytes) -> bool:
        full = self._full(key)
        with self._exclusive_lock:
            self._exclusive.add(full)
        try:
            with self._errors("upload", key):
                extra = self._checked_args(key, Path(path), sha256)
                try:
                    self._manager.upload(str(path), self.location.bucket, full, extra_args=extra).result()
                    return True
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code", "") not in ("PreconditionFailed", "412"):
                        raise
                return self._holds_file(full, Path(path))
        finally:
            with self._exclusive_lock:
                self._exclusive.discard(full)

    def _checked_args(self, key: str, path: Path, sha256: bytes) -> dict[str, str]:
        """A single PUT declares the file's sha256 (S3 refuses a body that does not match: BadDigest,
        nothing stored), instead of the checksum botocore would compute; the parts of a multipart
        upload carry their own checksums, so a file that large is hashed here first."""
        extra = dict(self.extra_args)
        if path.stat().st_size < self.options.multipart_threshold:
            # the algorithm header too: Object Lock buckets require x-amz-sdk-checksum-algorithm
            extra.update(ChecksumAlgorithm="SHA256", ChecksumSHA256=base64.b64encode(sha256).decode())
        elif sha256_of(path) != sha256:
            raise StorageError(f"upload {self.uri(key)} failed: {path.name} does not match its sha256", code=BAD_DIGEST)
        return extra

    def _if_none_match(self, params: dict, **_: object) -> None:
        with self._exclusive_lock:
            if params.get("Key") in self._exclusive:
                params["IfNoneMatch"] = "*"

    def _holds_file(self, full: str, path: Path) -> bool:
        """Whether the existing object is this file (size and ETag, with ListBucket only)."""
        answer = self.client.list_objects_v2(Bucket=self.location.bucket, Prefix=full, MaxKeys=1)
        contents = answer.get("Contents", [])
        if not contents or contents[0]["Key"] != full or int(contents[0]["Size"]) != path.stat().st_size:
            return False
        return contents[0].get("ETag", "").strip('"') == s3_etag(path, self.options)

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._errors("write", key):
            self._manager.upload(io.BytesIO(data), self.location.bucket, self._full(key),
                                 extra_args=dict(self.extra_args)).result()

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """PutObject with If-None-Match: * (a small object; not counted against the rate limit)."""
        with self._errors("create", key):
            for attempt in range(CONFLICT_RETRIES):
                try:
                    self.client.put_object(Bucket=self.location.bucket, Key=self._full(key), Body=data,
                                           IfNoneMatch="*", **self.extra_args)
                    return True
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code", "")
                    if code == "PreconditionFailed":
                        return False
                    if code != "ConditionalRequestConflict" or attempt == CONFLICT_RETRIES - 1:
                        raise
                    time.sleep(0.1 * 2 ** attempt)
        return False  # unreachable: the loop returns or raises

    def exists(self, key: str) -> bool:
        """ListObjectsV2 with the key as prefix: the key itself sorts first among its extensions."""
        full = self._full(key)
        with self._errors("check", key):
            answer = self.client.list_objects_v2(Bucket=self.location.bucket, Prefix=full, MaxKeys=1)
        contents = answer.get("Contents", [])
        return bool(contents) and contents[0]["Key"] == full

    def holds(self, key: str, data: bytes) -> bool:
        full = self._full(key)
        with self._errors("check", key):
            answer = self.client.list_objects_v2(Bucket=self.location.bucket, Prefix=full, MaxKeys=1)
        contents = answer.get("Contents", [])
        if not contents or contents[0]["Key"] != full:
            return False
        return contents[0].get("ETag", "").strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest()

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        check_prefix(prefix)
        root = self._full("")
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("list", prefix):
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=root + prefix):
                for item in page.get("Contents", []):
                    yield StoredObject(item["Key"][len(root):], int(item["Size"]))

    def get_file(self, key: str, path: str | Path) -> bytes:
        """Into a temp name beside path, renamed when complete. An object below the multipart
        threshold comes in one GET, written in order: hashed as it is written. A larger one comes
        in ranged parts out of order (s3transfer writes them at their offsets): hashed after."""
        dest = Path(path)
        with self._errors("download", key):
            dest.parent.mkdir(parents=True, exist_ok=True)
            size = self._size_of(key)
            if size >= self.options.multipart_threshold:
                self._manager.download(self.location.bucket, self._full(key), str(dest),
                                       subscribers=[_KnownSize(size)]).result()
                return sha256_of(dest)
            tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
            digest = hashlib.sha256()
            try:
                with open(tmp, "wb") as handle:
                    self._manager.download(self.location.bucket, self._full(key), HashingWriter(handle, digest),
                                           subscribers=[_KnownSize(size)]).result()
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            return digest.digest()

    def _size_of(self, key: str) -> int:
        return int(self.client.head_object(Bucket=self.location.bucket, Key=self._full(key))["ContentLength"])

    def get_bytes(self, key: str) -> bytes:
        out = io.BytesIO()
        with self._errors("read", key):
            self._manager.download(self.location.bucket, self._full(key), out).result()
        return out.getvalue()

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.location.bucket, Key=self._full(key))

    def close(self) -> None:
        self._manager.shutdown()
        self.client.close()

    def _full(self, key: str) -> str:
        if key:
            check_key(key)
        prefix = self.location.prefix
        return f"{prefix}/{key}" if prefix else key

    @contextmanager
    def _errors(self, op: str, key: str) -> Iterator[None]:
        try:
            yield
        except (ValueError, KeyboardInterrupt):
            raise
        except Exception as exc:
            full = f"{self.location.prefix}/{key}".strip("/")  # unchecked: key may be a listing prefix
            target = S3Target(op, self.location.bucket, full, self.uri(key), self.location.endpoint, self._secrets,
                              self.options.max_attempts)
            error = translate(exc, target)
            if error is exc:
                raise
            raise error from exc


def s3_etag(path: Path, options: StorageOptions) -> str:
    """The ETag S3 gives this file uploaded by our transfer config: MD5 of the body, or for a
    multipart upload the MD5 of the parts' MD5s with "-<parts>" (unencrypted or SSE-S3)."""
    size = path.stat().st_size
    if size < options.multipart_threshold:
        return _md5_file(path, 0, size).hexdigest()
    part = ChunksizeAdjuster().adjust_chunksize(options.part_size, size)
    digests = [_md5_file(path, offset, min(part, size - offset)).digest() for offset in range(0, size, part)]
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


def _md5_file(path: Path, offset: int, length: int) -> "hashlib._Hash":
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as src:
        src.seek(offset)
        while length > 0:
            chunk = src.read(min(1 << 20, length))
            if not chunk:
                break
            digest.update(chunk)
            length -= len(chunk)
    return digest


def transfer_config(options: StorageOptions) -> TransferConfig:
    return TransferConfig(
        multipart_threshold=options.multipart_threshold,
        multipart_chunksize=options.part_size,  # s3transfer doubles it while parts would exceed 10,000
        max_request_concurrency=options.max_concurrency,
        num_download_attempts=options.max_attempts,
        max_io_queue_size=options.max_io_queue,
        max_bandwidth=options.rate_limit,  # the manager wraps its streams in a limiter; limited() swaps its bucket
    )


def limited(manager: TransferManager, rate_limit: int | None) -> TransferManager:
    """One exact token bucket shared by every transfer of the manager, in place of s3transfer's
    LeakyBucket (0.95x of the asked rate, measured): s3transfer takes its limiter at construction
    only, so the manager's BandwidthLimiter is replaced (tests/unit/test_storage_s3_config checks
    the attribute is still there)."""
    if rate_limit:
        manager._bandwidth_limiter = BandwidthLimiter(TransferBucket(TokenBucket(rate_limit)))  # noqa: SLF001
    return manager


def upload_args(location: S3Location, options: StorageOptions) -> dict[str, str]:
    """ExtraArgs for every write: explicit checksum, then the URL's storage-class/sse/acl."""
    args = {"ChecksumAlgorithm": options.checksum_algorithm}
    if location.storage_class:
        args["StorageClass"] = location.storage_class
    if location.sse:
        args["ServerSideEncryption"] = location.sse
    if location.sse_kms_key_id:
        args["SSEKMSKeyId"] = location.sse_kms_key_id
    if location.acl:
        args["ACL"] = location.acl
    return args


class _KnownSize(BaseSubscriber):
    """Tells s3transfer the object's size (it would otherwise ask with a HeadObject of its own)."""

    def __init__(self, size: int) -> None:
        self._size = size

    def on_queued(self, future, **kwargs) -> None:  # noqa: ANN001, ANN003 - s3transfer's hook
        future.meta.provide_transfer_size(self._size)
