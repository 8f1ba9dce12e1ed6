"""Joining the cluster: reach PD, register with DevPD.PutStore, remember the id, heartbeat."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from pydantic import BaseModel, ValidationError

from br_common.grpc_tls import TLSConfig
from br_common.pd_client import PDClient, PDError
from br_devcluster.store.pd_dev import DevPDClient, PDRefused

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.2
HEARTBEAT_SECONDS = 5.0


class FatalError(RuntimeError):
    """The store cannot run (its data belongs elsewhere, PD refuses it); exits with this message."""


class Identity(BaseModel):
    """Kept in the data dir: which cluster the data belongs to and the id PD gave this store."""
    cluster_id: int
    store_id: int


def load_identity(path: Path) -> Identity | None:
    try:
        return Identity.model_validate_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        raise FatalError(f"cannot read {path}: {exc}") from None


def save_identity(path: Path, identity: Identity) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(identity.model_dump_json())
    os.replace(tmp, path)


def connect_pd(address: str, stop: threading.Event, tls: TLSConfig | None = None) -> PDClient | None:
    """Retry until PD answers GetMembers; None if asked to stop first."""
    while not stop.is_set():
        try:
            return PDClient(address, timeout=10.0, caller_id="br-devcluster-store", tls=tls)
        except PDError as exc:
            log.info("waiting for PD: %s", exc)
            stop.wait(RETRY_SECONDS)
    return None


def check_identity(identity: Identity | None, cluster_id: int) -> None:
    if identity is not None and identity.cluster_id != cluster_id:
        raise FatalError(f"the data dir belongs to cluster {identity.cluster_id}, but PD serves cluster {cluster_id}")


def register(dev_pd: DevPDClient, known_id: int, address: str, stop: threading.Event) -> int | None:
    """PutStore until PD answers (None if stopped first); a refusal is fatal."""
    while not stop.is_set():
        try:
            return dev_pd.put_store(known_id, address)
        except PDRefused as exc:
            raise FatalError(f"PD refused the store: {exc}") from None
        except PDError as exc:
            log.info("registering with PD: %s", exc)
            stop.wait(RETRY_SECONDS)
    return None


class Heartbeat:
    """Re-sends PutStore every few seconds so PD sees the store alive (and its address)."""

    def __init__(self, dev_pd: DevPDClient, store_id: int, address: str, stop: threading.Event) -> None:
        self._dev_pd = dev_pd
        self._store_id = store_id
        self._address = address
        self._stop = stop
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float = 2.0) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._dev_pd.put_store(self._store_id, self._address)
            except PDError as exc:
                log.warning("heartbeat failed: %s", exc)
