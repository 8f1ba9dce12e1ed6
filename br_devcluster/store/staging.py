"""Downloaded SSTs waiting for ingest: `<data-dir>/import/{uuid hex}.sst` plus a JSON sidecar
recording the file's key range (the SST itself cannot be read back without ingesting it).

Ingest removes what it ingested; a download that failed halfway, or whose work was redone
elsewhere (region moved, restore interrupted and rerun under new uuids), is never ingested, so
`remove_expired` drops staged files older than a TTL (at start and on every GC pass)."""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, ValidationError

from br_devcluster.store.engine import Engine
from br_devcluster.store.errors import StoreError

log = logging.getLogger(__name__)


class StagedSst(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    uuid: bytes
    first_key: bytes = b""  # user keys after rewrite; both empty when the file had no pairs
    last_key: bytes = b""
    total_kvs: int = 0
    total_bytes: int = 0
    size: int = 0

    @property
    def is_empty(self) -> bool:
        return self.total_kvs == 0


class Staging:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def clean_leftovers(self) -> None:
        """At start: a crash can leave scratch DBs and half-written files behind; staged SSTs stay."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        for tmp in self.directory.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    @property
    def scratch(self) -> Path:
        return self.directory / "scratch"

    def sst_path(self, uuid: bytes) -> Path:
        return self.directory / f"{uuid.hex()}.sst"

    def _meta_path(self, uuid: bytes) -> Path:
        return self.directory / f"{uuid.hex()}.json"

    def record(self, staged: StagedSst) -> None:
        """Written after the SST itself (atomically), so a sidecar always has its file."""
        path = self._meta_path(staged.uuid)
        tmp = path.with_name(f".{path.name}.{uuid4().hex}.tmp")
        tmp.write_text(staged.model_dump_json())
        os.replace(tmp, path)

    def load(self, uuid: bytes) -> StagedSst:
        path = self._meta_path(uuid)
        try:
            staged = StagedSst.model_validate_json(path.read_text())
        except FileNotFoundError:
            raise StoreError(f"SST {uuid.hex()} is not downloaded on this store: Download it first") from None
        except (OSError, ValidationError) as exc:
            raise StoreError(f"staged SST {uuid.hex()} is unreadable: {exc}") from None
        if not staged.is_empty and not self.sst_path(uuid).is_file():
            raise StoreError(f"SST {uuid.hex()} is not downloaded on this store: Download it first")
        return staged

    def remove(self, uuid: bytes) -> None:
        self._meta_path(uuid).unlink(missing_ok=True)
        self.sst_path(uuid).unlink(missing_ok=True)

    def remove_expired(self, ttl: float, now: float | None = None) -> int:
        """Remove the staged SSTs (file and sidecar together) whose newest part is older than
        `ttl` seconds; returns how many. A download still being written is fresh: its file's
        mtime moves with every write."""
        cutoff = (time.time() if now is None else now) - ttl
        newest: dict[str, float] = {}
        for path in self.directory.iterdir():
            if path.suffix in (".sst", ".json") and not path.name.startswith(".") and path.is_file():
                newest[path.stem] = max(newest.get(path.stem, 0.0), _mtime(path))
        expired = [stem for stem, mtime in newest.items() if mtime < cutoff]
        for stem in expired:
            for suffix in (".json", ".sst"):  # sidecar first: a sidecar never outlives its file
                (self.directory / f"{stem}{suffix}").unlink(missing_ok=True)
        if expired:
            log.info("removed %d staged SSTs older than %.0fs (never ingested)", len(expired), ttl)
        return len(expired)

    def ingest(self, engine: Engine, staged: list[StagedSst]) -> None:
        """Ingest the files (empty downloads have none); the caller removes them afterwards."""
        paths = [self.sst_path(item.uuid) for item in staged if not item.is_empty]
        if paths:
            try:
                engine.ingest(paths)
            except Exception as exc:  # rocksdict raises plain Exception
                raise StoreError(f"ingest failed: {exc}") from None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed meanwhile (ingested): nothing left to expire
        return float("inf")
