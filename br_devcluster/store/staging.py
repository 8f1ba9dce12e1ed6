"""Downloaded SSTs waiting for ingest, named as TiKV names them
(`<data-dir>/import/{uuid}_{region}_{conf_ver}_{version}_{cf}.sst`, br_common.import_files), plus a
JSON sidecar `{uuid hex}.json` recording the file's key range (the SST itself cannot be read back
without ingesting it) and the region epoch it was downloaded for.

Ingest removes what it ingested. A download that is never ingested goes as TiKV's own cleanup
drops it, when its region's epoch went stale or the region left this store (`remove_stale`, on
every GC pass), or when the agent beside the store discards it at the end of its restore; what
neither catches (a restore abandoned by hand) expires after a TTL (`remove_expired`, at start and
on every GC pass)."""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, ValidationError

from br_common.import_files import SST_SUFFIX, staged_sst_name
from br_common.kvproto import metapb_pb2
from br_common.pd_client import PDClient
from br_devcluster.store.engine import Engine
from br_devcluster.store.errors import StoreError

log = logging.getLogger(__name__)
SIDECAR = ".json"


class StagedSst(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    uuid: bytes
    region_id: int = 0  # the SSTMeta's region and epoch, as in TiKV's file name
    conf_ver: int = 0
    version: int = 0
    cf: str = "default"
    first_key: bytes = b""  # user keys after rewrite; both empty when the file had no pairs
    last_key: bytes = b""
    total_kvs: int = 0
    total_bytes: int = 0
    size: int = 0

    @property
    def is_empty(self) -> bool:
        return self.total_kvs == 0

    @property
    def file_name(self) -> str:
        return staged_sst_name(self.uuid, self.region_id, self.conf_ver, self.version, self.cf)

    def is_stale(self, region: metapb_pb2.Region | None, store_id: int) -> bool:
        """TiKV's rule: a newer epoch (or no such region on this store) can never ingest this file."""
        if region is None or all(peer.store_id != store_id for peer in region.peers):
            return True
        epoch = region.region_epoch
        return epoch.version > self.version or epoch.conf_ver > self.conf_ver


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

    def sst_path(self, staged: StagedSst) -> Path:
        return self.directory / staged.file_name

    def _meta_path(self, uuid: bytes) -> Path:
        return self.directory / f"{uuid.hex()}{SIDECAR}"

    def record(self, staged: StagedSst) -> None:
        """Written after the SST itself (atomically), so a sidecar always had its file."""
        path = self._meta_path(staged.uuid)
        tmp = path.with_name(f".{path.name}.{uuid4().hex}.tmp")
        tmp.write_text(staged.model_dump_json())
        os.replace(tmp, path)

    def _read(self, path: Path) -> StagedSst | None:
        try:
            return StagedSst.model_validate_json(path.read_text())
        except FileNotFoundError:
            return None

    def load(self, uuid: bytes) -> StagedSst:
        try:
            staged = self._read(self._meta_path(uuid))
        except (OSError, ValidationError) as exc:
            raise StoreError(f"staged SST {uuid.hex()} is unreadable: {exc}") from None
        if staged is None or (not staged.is_empty and not self.sst_path(staged).is_file()):
            raise StoreError(f"SST {uuid.hex()} is not downloaded on this store: Download it first")
        return staged

    def _read_or_none(self, path: Path) -> StagedSst | None:
        """The sidecar, or None when it is missing or unreadable (cleanup goes on regardless)."""
        try:
            return self._read(path)
        except (OSError, ValidationError):
            return None

    def remove(self, uuid: bytes) -> None:
        path = self._meta_path(uuid)
        self._drop(path, self._read_or_none(path))

    def _staged(self) -> tuple[dict[Path, StagedSst | None], list[Path]]:
        """Every sidecar (None when unreadable) and the SSTs no sidecar names."""
        sidecars: dict[Path, StagedSst | None] = {}
        ssts: set[Path] = set()
        for path in self.directory.iterdir():
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.suffix == SIDECAR:
                sidecars[path] = self._read_or_none(path)
            elif path.suffix == SST_SUFFIX:
                ssts.add(path)
        named = {self.sst_path(s) for s in sidecars.values() if s is not None}
        return sidecars, sorted(ssts - named)

    def _drop(self, sidecar: Path, staged: StagedSst | None) -> None:
        sidecar.unlink(missing_ok=True)  # sidecar first: it never outlives its file
        if staged is not None:
            self.sst_path(staged).unlink(missing_ok=True)

    def remove_expired(self, ttl: float, now: float | None = None) -> int:
        """Remove the staged SSTs (file and sidecar together) whose newest part is older than
        `ttl` seconds, and sidecars whose SST is gone; returns how many. A download still being
        written is fresh: its file's mtime moves with every write."""
        cutoff = (time.time() if now is None else now) - ttl
        sidecars, orphans = self._staged()
        removed = 0
        for sidecar, staged in sidecars.items():
            sst = self.sst_path(staged) if staged is not None and not staged.is_empty else None
            gone = sst is not None and not sst.exists()
            if gone or max(_mtime(sidecar), _mtime(sst) if sst else 0.0) < cutoff:
                self._drop(sidecar, staged)
                removed += 1
        for sst in orphans:
            if _mtime(sst) < cutoff:
                sst.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.info("removed %d staged SSTs older than %.0fs or without their file (never ingested)", removed, ttl)
        return removed

    def remove_stale(self, pd: PDClient, store_id: int) -> int:
        """TiKV's cleanup of the import directory: drop what can never be ingested any more."""
        stale = 0
        regions: dict[int, metapb_pb2.Region | None] = {}  # one PD lookup per region and pass
        for sidecar, staged in self._staged()[0].items():
            if staged is None or not staged.region_id:
                continue
            if staged.region_id not in regions:
                info = pd.region_by_id(staged.region_id)
                regions[staged.region_id] = info.region if info else None
            if staged.is_stale(regions[staged.region_id], store_id):
                self._drop(sidecar, staged)
                stale += 1
        if stale:
            log.info("removed %d staged SSTs whose region changed (they can never be ingested)", stale)
        return stale

    def ingest(self, engine: Engine, staged: list[StagedSst]) -> None:
        """Ingest the files (empty downloads have none); the caller removes them afterwards."""
        by_cf: dict[str, list[StagedSst]] = {}
        for item in staged:
            if not item.is_empty:
                by_cf.setdefault(item.cf, []).append(item)
        for cf, items in by_cf.items():
            try:
                engine.ingest(cf, [self.sst_path(i) for i in items], [(i.first_key, i.total_bytes) for i in items])
            except Exception as exc:  # rocksdict raises plain Exception
                raise StoreError(f"ingest into CF {cf} failed: {exc}") from None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed meanwhile (ingested): nothing left to expire
        return float("inf")
