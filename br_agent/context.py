"""The per-process agent context the Celery tasks run in (one agent process = one store).

`br_agent.agent` builds it at startup and installs it with `set_context`; tasks call
`get_context()` and get the store's gRPC stubs, the staging directory, Redis (job state) and
`open_storage(spec)`, which turns a task's credential-free StorageSpec into an ExternalStorage
with this host's credentials (boto3 default chain), or with URL keys sealed to this agent.
"""
from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import redis
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from br_agent import metrics
from br_agent.metered_storage import MeteredStorage
from br_agent.storage_cache import StorageCache
from br_common.fleet import destinations
from br_common.fleet.jobs import JobStore
from br_common.fleet.messages import StorageSpec
from br_common.fleet.registry import AgentInfo
from br_common.fleet.task_errors import TaskError, TaskRefusedError
from br_common.grpc_tls import TLSConfig, open_channel
from br_common.lock_resolver import LockResolver
from br_common.pd_client import PDClient
from br_common.kvproto import brpb_pb2_grpc, import_sstpb_pb2_grpc
from br_common.sealing import SealedBox, SealingError, open_sealed
from br_common.storage import ExternalStorage, Location, S3Storage, StorageOptions, open_storage, parse_storage_url

log = logging.getLogger(__name__)


class AgentTaskError(TaskError):
    """A task failed for a reason the coordinator should show as is (one line, no secrets)."""


@dataclass
class AgentContext:
    info: AgentInfo
    cluster_id: int
    pd_address: str
    staging_dir: Path
    redis: redis.Redis
    private_key: X25519PrivateKey | None = None  # opens SealedBoxes addressed to info.public_key
    tls: TLSConfig = field(default_factory=TLSConfig)  # the store's gRPC (clusters with enable_tls)
    store_import_dir: Path | None = None  # TiKV's import directory on this host (None: not ours to clean)
    _channel: grpc.Channel | None = None
    _lock_resolver: LockResolver | None = None
    storages: StorageCache = field(default_factory=StorageCache)
    _secrets: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def store_id(self) -> int:
        return self.info.store_id

    @property
    def instance(self) -> str:
        return self.info.instance

    # --- the store ------------------------------------------------------------------------
    def channel(self) -> grpc.Channel:
        with self._lock:
            if self._channel is None:
                self._channel = open_channel(self.info.store_address, self.tls)
            return self._channel

    def backup_stub(self) -> brpb_pb2_grpc.BackupStub:
        return brpb_pb2_grpc.BackupStub(self.channel())

    def import_stub(self) -> import_sstpb_pb2_grpc.ImportSSTStub:
        return import_sstpb_pb2_grpc.ImportSSTStub(self.channel())

    def lock_resolver(self) -> LockResolver:
        """The cluster's Kv* RPCs through PD, for the locks a txn backup runs into (opened on first use)."""
        with self._lock:
            if self._lock_resolver is None:
                self._lock_resolver = LockResolver(PDClient(self.pd_address, tls=self.tls))
            return self._lock_resolver

    # --- job state and staging ------------------------------------------------------------
    def jobs(self, job_id: str) -> JobStore:
        return JobStore(self.redis, job_id)

    def drop_staging(self, path: Path) -> None:
        """An attempt's staging directory goes at its end, and its job's directory once empty (other
        attempts of the job may still stage there): nothing of a finished attempt stays behind."""
        shutil.rmtree(path, ignore_errors=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass  # not empty, or already gone

    def staging(self, *parts: str) -> Path:
        """A fresh directory under the staging dir (the store writes SSTs there: same host)."""
        path = self.staging_dir.joinpath("jobs", *parts)
        shutil.rmtree(path, ignore_errors=True)  # leftovers of a crashed earlier run
        path.mkdir(parents=True)
        return path

    def clean_staging(self) -> None:
        """At startup: what a killed predecessor left behind is garbage (its work is resent)."""
        shutil.rmtree(self.staging_dir / "jobs", ignore_errors=True)

    # --- storage --------------------------------------------------------------------------
    def open_storage(self, spec: StorageSpec, rate_limit: int = 0) -> ExternalStorage:
        """The storage of a task, with this host's credentials, counted in the metrics; a task
        outside the allowlist is refused here, before anything touches storage.

        rate_limit (bytes/s, 0 = none) bounds every transfer through the returned storage
        together, as one smooth stream: storages are shared per (URL, credentials, rate), so
        all tasks of this agent with the same --ratelimit share one limit (the store's, not a
        task's)."""
        if not self.info.allows(spec.url):
            log.warning("refused a task: %s", destinations.refusal(self.store_id, spec.url,
                                                                   self.info.allowed_destinations))
            raise TaskRefusedError(destinations.refusal(self.store_id, spec.url, self.info.allowed_destinations))
        sealed = spec.sealed.model_dump_json() if spec.sealed is not None else ""
        return self.storages.get((spec.url, sealed, rate_limit), lambda: self._open(spec, rate_limit))

    def _open(self, spec: StorageSpec, rate_limit: int) -> ExternalStorage:
        location = parse_storage_url(spec.url)
        if spec.sealed is not None:
            location = self._with_credentials(location, spec.sealed)
        return _metered(open_storage(location, options=StorageOptions(rate_limit=rate_limit or None)))

    def _with_credentials(self, location: Location, box: SealedBox) -> Location:
        if self.private_key is None or self.info.public_key not in box.parts:
            raise AgentTaskError(f"the credentials for {location.redacted()} were not sealed to agent "
                                 f"{self.instance}; rerun the command to reseal them to the live agents")
        try:
            plaintext = open_sealed(box, self.info.public_key, self.private_key)
        except SealingError:
            raise AgentTaskError(f"cannot open the credentials sealed to agent {self.instance}") from None
        try:
            opened = location.with_revealed_credentials(plaintext)
        except ValueError as exc:  # not S3 credentials, or a storage that takes none
            raise AgentTaskError(f"the credentials sealed to agent {self.instance}: {exc}") from None
        with self._lock:
            self._secrets.update(opened.secret_values())
        return opened

    def scrub(self, text: str) -> str:
        """Belt and braces: no secret this agent holds survives into an error or a log line."""
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        self.storages.close()
        with self._lock:
            channel, self._channel = self._channel, None
            resolver, self._lock_resolver = self._lock_resolver, None
        if channel is not None:
            channel.close()
        if resolver is not None:
            resolver.close()
            resolver.pd.close()


def _metered(storage: ExternalStorage) -> ExternalStorage:
    if isinstance(storage, S3Storage):
        metrics.watch_s3_client(storage.client)
    return MeteredStorage(storage)


_CONTEXT: AgentContext | None = None


def set_context(context: AgentContext | None) -> None:
    global _CONTEXT
    _CONTEXT = context


def get_context() -> AgentContext:
    if _CONTEXT is None:
        raise AgentTaskError("this process is not a br-agent (no agent context)")
    return _CONTEXT
