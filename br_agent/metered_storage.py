"""An ExternalStorage that counts the bytes an agent moves through it (br_agent.metrics).

Why a wrapper at the storage and not in each task: backup uploads, storage-side jobs and
restore downloads all go through `AgentContext.open_storage`, so one place counts everything
and a new task type is counted without remembering to.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from br_agent import metrics
from br_common.storage import ExternalStorage, StoredObject


class MeteredStorage(ExternalStorage):
    def __init__(self, inner: ExternalStorage) -> None:
        self.inner = inner

    def put_file(self, key: str, path: str | Path) -> None:
        self.inner.put_file(key, path)
        metrics.uploaded(Path(path).stat().st_size)

    def put_file_exclusive(self, key: str, path: str | Path, sha256: bytes) -> bool:
        created = self.inner.put_file_exclusive(key, path, sha256)
        metrics.uploaded(Path(path).stat().st_size)
        return created

    def put_bytes(self, key: str, data: bytes) -> None:
        self.inner.put_bytes(key, data)
        metrics.uploaded(len(data))

    def create_exclusive(self, key: str, data: bytes) -> bool:
        created = self.inner.create_exclusive(key, data)
        if created:
            metrics.uploaded(len(data))
        return created

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def holds(self, key: str, data: bytes) -> bool:
        return self.inner.holds(key, data)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        return self.inner.list(prefix)

    def get_file(self, key: str, path: str | Path) -> bytes:
        digest = self.inner.get_file(key, path)
        metrics.downloaded(Path(path).stat().st_size)
        return digest

    def get_bytes(self, key: str) -> bytes:
        data = self.inner.get_bytes(key)
        metrics.downloaded(len(data))
        return data

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def uri(self, key: str = "") -> str:
        return self.inner.uri(key)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # location, options, client: the backend's own
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
