"""The storage interface shared by coordinator and agents: one abstract class, two backends.

Keys are '/'-separated paths relative to the location's prefix (S3) or directory (local).
Every failure is a StorageError with a one-line message that names the object and what to do,
and never contains a secret.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple


class StorageError(Exception):
    """A storage operation failed; str(error) is one line, safe to show and to log."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code  # e.g. 'AccessDenied', 'NoSuchKey'; '' when not from the server


BAD_DIGEST = "BadDigest"  # S3's code for a body that does not match its declared checksum


class ObjectNotFound(StorageError):
    """The key does not exist (get_file/get_bytes)."""


class StoredObject(NamedTuple):
    key: str  # relative to the storage root
    size: int


def check_key(key: str) -> str:
    """A key must be a relative path without empty, '.' or '..' segments (no escaping the root)."""
    if not key or key.startswith("/") or key.endswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid storage key {key!r}: use a relative path like 'dir/name'")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid storage key {key!r}: no empty, '.' or '..' segments")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: '' or the start of a key (no leading '/', no '.' or '..' segments)."""
    if prefix.startswith("/") or "\\" in prefix or any(part in (".", "..") for part in prefix.split("/")):
        raise ValueError(f"invalid storage prefix {prefix!r}: use the start of a relative key like 'dir/'")
    return prefix


class ExternalStorage(ABC):
    """Where backups live. Implementations are thread-safe; close() releases pools and threads."""

    @classmethod
    def open(cls, location: Any, options: Any) -> "ExternalStorage":
        """The storage of a parsed location (br_common.storage.schemes names the class per scheme);
        backends implement it, wrappers such as the agent's MeteredStorage do not."""
        raise NotImplementedError(f"{cls.__name__} is not a storage backend")

    @abstractmethod
    def put_file(self, key: str, path: str | Path) -> None:
        """Upload a local file (multipart when big); a reader never sees a half-written object."""

    @abstractmethod
    def put_file_exclusive(self, key: str, path: str | Path, sha256: bytes) -> bool:
        """Upload a local file unless key exists, never overwriting (S3: If-None-Match). True when
        key now holds this file: created, or already there with these bytes (a retry whose first
        answer was lost); False when another object holds the key. The bytes stored are checked
        against sha256 on the way (S3: x-amz-checksum-sha256, verified by the server): a file that
        does not hash to it raises StorageError(code=BAD_DIGEST) and nothing is stored, so the
        caller needs no hash pass of its own."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write (or overwrite) a small object."""

    @abstractmethod
    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Atomically create key with data; False if it already exists (lock files, markers)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether key exists (on S3 needs only s3:ListBucket)."""

    @abstractmethod
    def holds(self, key: str, data: bytes) -> bool:
        """Whether key exists with exactly this content, without reading it back (on S3 needs only
        s3:ListBucket: a single-part PUT's ETag is the MD5 of its body; False when unsure)."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Objects whose key starts with prefix (a string prefix, not a directory), in key order."""

    @abstractmethod
    def get_file(self, key: str, path: str | Path) -> bytes:
        """Download to path (parents created); path appears only once complete. ObjectNotFound if
        missing. Returns the sha256 of the bytes written, hashed on the way where the backend can
        (so that the caller's integrity check needs no second read)."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read a whole object. ObjectNotFound if missing."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (missing is fine). Only `br fleet orphans --remove` deletes, and never
        an object a backupmeta lists; it needs s3:DeleteObject, which the backup and restore
        policies do not grant."""

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """Where key lives, for messages (never carries credentials)."""

    def close(self) -> None:
        """Release resources; the storage is unusable afterwards."""

    def __enter__(self) -> ExternalStorage:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
