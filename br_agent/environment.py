"""What a task's run function may use of its agent: narrow views of AgentContext, one per task
family, so a run function says what it touches and a unit test hands it a small fake.

AgentContext (br_agent.context) satisfies every one of them; the task base passes it in.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from br_common.fleet.jobs import JobStore
from br_common.fleet.messages import StorageSpec
from br_common.kvproto import brpb_pb2_grpc, import_sstpb_pb2_grpc
from br_common.lock_resolver import LockResolver
from br_common.storage import ExternalStorage


class TaskEnv(Protocol):
    """Every task: who runs it, the job's state, storage with this host's credentials."""

    @property
    def store_id(self) -> int: ...

    @property
    def instance(self) -> str: ...

    def jobs(self, job_id: str) -> JobStore: ...

    def open_storage(self, spec: StorageSpec, rate_limit: int = 0) -> ExternalStorage: ...

    def scrub(self, text: str) -> str: ...


class StagingEnv(TaskEnv, Protocol):
    """Tasks that have the store write or read files on this host."""

    staging_dir: Path

    def staging(self, *parts: str) -> Path: ...

    def drop_staging(self, path: Path) -> None: ...


class BackupEnv(StagingEnv, Protocol):
    def backup_stub(self) -> brpb_pb2_grpc.BackupStub: ...

    def lock_resolver(self) -> LockResolver: ...


class RestoreEnv(StagingEnv, Protocol):
    cluster_id: int
    store_import_dir: Path | None  # TiKV's import directory on this host (None: not ours to clean)

    def import_stub(self) -> import_sstpb_pb2_grpc.ImportSSTStub: ...
