"""Backup storage: parse a storage URL, open it, put/get/list objects.

    from br_common.storage import open_storage, StorageOptions
    with open_storage("s3://bucket/backup-1?endpoint=http://127.0.0.1:9000",
                      options=StorageOptions(rate_limit=128 * 1024 * 1024)) as storage:
        if not storage.create_exclusive("backup.lock", b"job-1"):
            ...  # someone else owns this location
        storage.put_file("1/region_1.sst", "/data/1/region_1.sst")
        for obj in storage.list("1/"):
            print(obj.key, obj.size)

Errors are StorageError (one line, no secrets; ObjectNotFound for a missing key) and ValueError
for a bad URL or key. Credentials: see s3_session; to hand URL keys to agents use
S3Credentials.reveal() + br_common.sealing.seal(), never the URL itself.
"""
from __future__ import annotations

from br_common.storage.base import ExternalStorage, ObjectNotFound, StorageError, StoredObject, check_key, \
    check_prefix
from br_common.storage.options import StorageOptions
from br_common.storage.schemes import location_from_pb, parse_storage_url, scheme_of
from br_common.storage.url import Location, LocalLocation, S3Credentials, S3Flags, S3Location, StorageLocation

__all__ = [
    "ExternalStorage", "Location", "LocalLocation", "LocalStorage", "ObjectNotFound", "S3Credentials", "S3Flags",
    "S3Location", "S3Storage", "StorageError", "StorageLocation", "StorageOptions", "StoredObject", "check_key",
    "check_prefix", "location_from_pb", "open_storage", "parse_storage_url",
]


def __getattr__(name: str) -> type:
    """The storage classes load on first use: parsing a URL (every `br` call) must not import boto3."""
    if name == "S3Storage":
        from br_common.storage.s3 import S3Storage  # noqa: PLC0415

        return S3Storage
    if name == "LocalStorage":
        from br_common.storage.local import LocalStorage  # noqa: PLC0415

        return LocalStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_storage(target: str | Location, *, flags: S3Flags | None = None,
                 options: StorageOptions | None = None) -> ExternalStorage:
    """A storage for a URL string (parsed with `flags`, URL parameters win) or a parsed location."""
    location = parse_storage_url(target, flags) if isinstance(target, str) else target
    return scheme_of(location).storage().open(location, options or StorageOptions())
