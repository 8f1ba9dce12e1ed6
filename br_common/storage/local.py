"""The local backend: a directory (local disk or a shared mount).

Writes go to a temporary file in the target directory, are fsynced, then renamed, so a
half-written file is never seen under its final name and a crash leaves only '.br-tmp-' files,
which list() skips.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from br_common.storage.base import BAD_DIGEST, ExternalStorage, ObjectNotFound, StorageError, StoredObject, check_key, \
    check_prefix
from br_common.storage.hashing import HashingWriter, sha256_of
from br_common.storage.ratelimit import TokenBucket, copy_stream
from br_common.storage.options import StorageOptions
from br_common.storage.url import LocalLocation

TMP_MARK = ".br-tmp-"


class LocalStorage(ExternalStorage):
    def __init__(self, location: LocalLocation, rate_limit: TokenBucket | None = None) -> None:
        self.location = location
        self.root = Path(location.path)
        self._bucket = rate_limit

    @classmethod
    def open(cls, location: LocalLocation, options: StorageOptions) -> "LocalStorage":
        return cls(location, TokenBucket(options.rate_limit) if options.rate_limit else None)

    def uri(self, key: str = "") -> str:
        return f"{self.location.root_uri().rstrip('/')}/{key}" if key else self.location.root_uri()

    def put_file(self, key: str, path: str | Path) -> None:
        with self._errors("upload", key):
            with open(path, "rb") as src:
                self._write_atomic(key, lambda dst: copy_stream(src, dst, self._bucket))

    def put_file_exclusive(self, key: str, path: str | Path, sha256: bytes) -> bool:
        with self._errors("upload", key):
            dest = self._path(key)
            digest = hashlib.sha256()
            with open(path, "rb") as src:
                tmp = self._write_temp(dest, lambda dst: copy_stream(src, HashingWriter(dst, digest), self._bucket))
            if digest.digest() != sha256:
                tmp.unlink(missing_ok=True)
                raise StorageError(f"upload {self.uri(key)} failed: {path} does not match its sha256", code=BAD_DIGEST)
            try:
                os.link(tmp, dest)  # fails if the key exists: nothing is ever overwritten
                return True
            except FileExistsError:
                return sha256_of(dest) == sha256
            finally:
                tmp.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._errors("write", key):
            self._write_atomic(key, lambda dst: copy_stream(io.BytesIO(data), dst, self._bucket))

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write a complete temp file, then link() it to the key: link fails if the key exists,
        and unlike O_EXCL on the final name nobody can read the file before its content is there."""
        with self._errors("create", key):
            dest = self._path(key)
            tmp = self._write_temp(dest, lambda dst: copy_stream(io.BytesIO(data), dst, self._bucket))
            try:
                os.link(tmp, dest)
                return True
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        with self._errors("check", key):
            return self._path(key).is_file()

    def holds(self, key: str, data: bytes) -> bool:
        with self._errors("check", key):
            path = self._path(key)
            return path.is_file() and path.read_bytes() == data

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        check_prefix(prefix)
        with self._errors("list", prefix):
            found = sorted(self._walk(prefix))
        yield from found

    def get_file(self, key: str, path: str | Path) -> bytes:
        dest = Path(path)
        digest = hashlib.sha256()
        with self._errors("download", key), self._open_object(key) as src:
            tmp = self._write_temp(dest, lambda dst: copy_stream(src, HashingWriter(dst, digest), self._bucket),
                                   sync=False)
            os.replace(tmp, dest)
        return digest.digest()

    def get_bytes(self, key: str) -> bytes:
        out = io.BytesIO()
        with self._errors("read", key), self._open_object(key) as src:
            copy_stream(src, out, self._bucket)
        return out.getvalue()

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self._path(key).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _walk(self, prefix: str) -> Iterator[StoredObject]:
        # start at the deepest directory the prefix names, so a per-store listing stays cheap
        start = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        for dirpath, _, filenames in os.walk(start):
            for name in filenames:
                if TMP_MARK in name:
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield StoredObject(key, full.stat().st_size)

    @contextmanager
    def _open_object(self, key: str) -> Iterator[BinaryIO]:
        try:
            src = open(self._path(key), "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"{self.uri(key)} does not exist", code="NoSuchKey") from None
        with src:
            yield src

    def _write_atomic(self, key: str, writer: Callable[[BinaryIO], object]) -> None:
        dest = self._path(key)
        os.replace(self._write_temp(dest, writer), dest)

    @staticmethod
    def _write_temp(dest: Path, writer: Callable[[BinaryIO], object], sync: bool = True) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}{TMP_MARK}")
        try:
            with os.fdopen(fd, "wb") as dst:
                writer(dst)
                dst.flush()
                if sync:  # backup data must survive a crash once put_* returned
                    os.fsync(dst.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    @contextmanager
    def _errors(self, op: str, key: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except OSError as exc:
            where = exc.filename if exc.filename else self.uri(key)
            raise StorageError(f"{op} {self.uri(key)} failed: {exc.strerror or exc} ({where})",
                               code=type(exc).__name__) from exc
