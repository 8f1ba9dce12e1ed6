"""Pydantic models of every fleet task's input and result (the Celery wire contract).

A task takes ONE positional argument, `Model.model_dump(mode="json")`, and returns its result
model dumped the same way; bytes travel as hex. Validate at the boundary:

    # coordinator
    from br_common.fleet import app as fleet_app, messages as m
    result = fleet_app.send(app, m.BACKUP_RANGE, task_model, queue=store_queue(cid, 2), shadow="backup ...")
    out = m.BackupRangeResult.model_validate(result.get())

    # agent
    @shared_task(name=m.BACKUP_RANGE, bind=True)
    def backup_range(self, payload: dict) -> dict:
        task = m.parse(m.BackupRangeTask, payload)
        ...
        return m.BackupRangeResult(...).model_dump(mode="json")

Nothing here may hold a secret: storage URLs are credential-free, and keys given on the
command line travel only as a SealedBox (`StorageSpec.sealed`, see br_common.sealing) whose
parts only the recipient agents' private keys open. Task args are visible in Redis and Flower.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError

from br_common.backupmeta.kind import BackupKind
from br_common.fleet.task_errors import ErrorKind
from br_common.kvproto import brpb_pb2
from br_common.redaction import show_key
from br_common.sealing import SealedBox

# task names (Flower shows them; `shadow=` adds the job/store/range detail)
BACKUP_RANGE = "br.backup.range"
ACQUIRE_LOCK = "br.storage.acquire_lock"
WRITE_BACKUPMETA = "br.storage.write_backupmeta"
READ_BACKUPMETA = "br.storage.read_backupmeta"
ORPHANS = "br.storage.orphans"

Compression = Literal["lz4", "snappy", "zstd"]
COMPRESSION_TYPES: dict[str, int] = {"lz4": brpb_pb2.LZ4, "snappy": brpb_pb2.SNAPPY, "zstd": brpb_pb2.ZSTD}


def _from_hex(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise ValueError("expected a hex string") from None
    return value


HexBytes = Annotated[bytes, BeforeValidator(_from_hex), PlainSerializer(lambda b: b.hex(), return_type=str,
                                                                          when_used="json")]


class Message(BaseModel):
    """Base: unknown fields are an error (a typo must not silently drop data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskResult(Message):
    """The envelope of every task's result: what it did, or why it did not (error and its kind,
    task_errors.ErrorKind; empty = done), or that it did nothing because the coordinator no longer
    wanted it (skipped). A task whose whole attempt fails raises a typed TaskError instead."""

    error: str = ""
    error_kind: ErrorKind | Literal[""] = ""
    skipped: str = ""


class MessageError(ValueError):
    """A task argument or result did not match its model."""


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], payload: Any) -> M:
    """Validate a task argument/result; one-line error naming the model (no payload echo)."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise MessageError(f"bad {model.__name__}: {where}: {first.get('msg')}") from None


def summarize(payload: BaseModel) -> str:
    """What Flower shows as a task's args: each field in a few words (key ranges as labels,
    storage as its credential-free URL, bytes and file lists as sizes), no blobs or sealed boxes.
    Generic over the models, so restore's messages read as well as backup's."""
    return " ".join(f"{name}={_brief(getattr(payload, name))}" for name in type(payload).model_fields)


def _brief(value: Any) -> str:
    if isinstance(value, KeyRange):
        return value.label()
    if isinstance(value, StorageSpec):
        sealed = f" (keys sealed for {len(value.sealed_for())} agents)" if value.sealed is not None else ""
        return value.url + sealed
    if isinstance(value, bytes):  # keys in hex, blobs (backupmeta) as their size
        return (value.hex() or '""') if len(value) <= 32 else human_size(len(value))
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], BaseModel):
        sizes = [_size_of(v) for v in value]
        total = f", {human_size(sum(sizes))}" if all(isinstance(n, int) for n in sizes) else ""
        return f"[{len(value)} x {type(value[0]).__name__}{total}]"
    if isinstance(value, (list, tuple)):
        return _short("[" + ", ".join(_brief(v) for v in value) + "]")
    if isinstance(value, BaseModel):
        return "{" + summarize(value) + "}"
    return _short(str(value))


def _size_of(item: BaseModel) -> int | None:
    """Bytes an item stands for: its own size, or its file's (restore pieces)."""
    size = getattr(item, "size", None)
    if size is None and isinstance(getattr(item, "file", None), BaseModel):
        size = getattr(item.file, "size", None)
    return size if isinstance(size, int) else None


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def human_size(nbytes: int) -> str:
    """1536 -> '1.5KiB': sizes in task names and args."""
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}TiB"  # unreachable


# --- shared pieces ---------------------------------------------------------------------------
class KeyRange(Message):
    """[start, end); end b"" means unbounded."""

    start: HexBytes = b""
    end: HexBytes = b""

    def label(self) -> str:
        return f"[{show_key(self.start, '-inf')}..{show_key(self.end, '+inf')})"


class FileInfo(Message):
    """backup.File as a model (every field of br-facts.md's list)."""

    name: str
    sha256: HexBytes = b""
    start_key: HexBytes = b""
    end_key: HexBytes = b""
    start_version: int = 0
    end_version: int = 0
    crc64xor: int = 0
    total_kvs: int = 0
    total_bytes: int = 0
    cf: str = "default"
    size: int = 0

    @classmethod
    def from_proto(cls, f: brpb_pb2.File) -> "FileInfo":
        return cls(name=f.name, sha256=f.sha256, start_key=f.start_key, end_key=f.end_key,
                   start_version=f.start_version, end_version=f.end_version, crc64xor=f.crc64xor,
                   total_kvs=f.total_kvs, total_bytes=f.total_bytes, cf=f.cf, size=f.size)

    def to_proto(self) -> brpb_pb2.File:
        return brpb_pb2.File(**self.model_dump())


class StorageSpec(Message):
    """Where to write: a credential-free URL; with -c also the URL's keys in a SealedBox whose
    parts are keyed by recipient agents' public keys (hex), see br_common.sealing."""

    url: str
    sealed: SealedBox | None = None

    def sealed_for(self) -> list[str]:
        return sorted(self.sealed.parts) if self.sealed is not None else []

    def __repr__(self) -> str:  # keep even sealed blobs out of logs
        return f"StorageSpec(url={self.url!r}, sealed_for={len(self.sealed_for())} agents)"


class TaskProgress(Message):
    """Meta of a task's PROGRESS state: which agent instance runs it, how far it got."""

    agent: str
    bytes_uploaded: int = 0
    files_uploaded: int = 0
    # the store's part is over (a backup's Backup stream ended; its files still upload): the
    # coordinator may start the store on the next range meanwhile (FollowConfig.tail_in_flight)
    store_done: bool = False


# --- backup ------------------------------------------------------------------------------------
class BackupRangeTask(Message):
    job_id: str
    attempt: str  # unique per send; a superseded attempt's result is ignored
    cluster_id: int
    store_id: int
    range: KeyRange
    backup_ts: int
    kind: BackupKind = BackupKind.RAW  # what to back up: BackupRequest's is_raw_kv and cf follow from it
    start_version: int = 0  # 0: a full backup; else the versions after it (incremental)
    checksum: bool = True  # --checksum: the agent checks every file's pairs against the store's numbers
    # --ratelimit is a per-store budget (bytes/s, 0 = unlimited): every upload of the store's agent
    # shares one stream at store_budget (what reaches S3 never exceeds it, whatever the concurrency);
    # rate_limit is the store's own Backup request limit, as TiKV applies it, per request
    rate_limit: int = 0
    store_budget: int = 0
    compression: Compression = "zstd"
    compression_level: int = 0
    storage: StorageSpec


class CoveredRange(Message):
    """A piece of the task's range backed up completely (possibly with no files: no data)."""

    range: KeyRange
    files: list[FileInfo] = Field(default_factory=list)


class UncoveredRange(Message):
    """A piece left to redo (region error, store error, stream cut), with why and its kind."""

    range: KeyRange
    reason: str
    error_kind: ErrorKind = "region"


class BackupRangeResult(TaskResult):
    """covered + uncovered tile the task's range exactly (the agent guarantees it)."""

    job_id: str
    attempt: str
    store_id: int
    agent: str
    covered: list[CoveredRange] = Field(default_factory=list)
    uncovered: list[UncoveredRange] = Field(default_factory=list)
    bytes_uploaded: int = 0


# --- storage-side jobs -------------------------------------------------------------------------
class AcquireLockTask(Message):
    job_id: str
    storage: StorageSpec
    lock_body: str  # JSON text stored in backup.lock: job id and version, the same on every attempt


class AcquireLockResult(TaskResult):
    outcome: Literal["acquired", "locked", "complete"]
    detail: str = ""


class WriteBackupMetaTask(Message):
    job_id: str
    storage: StorageSpec
    backupmeta: HexBytes  # serialized backup.BackupMeta
    seal: str = ""  # JSON of backupmeta.seal.Seal (its sha256, size, the coordinator's signature)


class WriteBackupMetaResult(TaskResult):
    outcome: Literal["written", "exists"]  # exists: a backupmeta was there (never overwritten)
    name: str
    size: int


class ReadBackupMetaTask(Message):
    storage: StorageSpec


class ReadBackupMetaResult(TaskResult):
    backupmeta: HexBytes  # serialized backup.BackupMeta, already parsed and checked by the agent
    size: int
    seal: HexBytes | None = None  # backupmeta.seal as stored (None: there is none)


class OrphansTask(Message):
    storage: StorageSpec
    remove: bool = False  # delete them (only from a complete backup)


class Orphan(Message):
    name: str
    size: int


class OrphansResult(TaskResult):
    complete: bool  # backupmeta present: orphans are the data files it does not list
    orphans: list[Orphan] = Field(default_factory=list)
    removed: int = 0
