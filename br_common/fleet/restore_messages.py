"""Pydantic models of the restore tasks (the Celery wire contract), as br_common.fleet.messages.

    # coordinator
    result = fleet_app.send(app, DOWNLOAD, DownloadTask(...), queue=store_queue(cid, 2), shadow="restore ...")
    out = parse(DownloadResult, result.get())
    # agent
    @shared_task(name=DOWNLOAD)
    def download(payload: dict) -> dict:
        task = parse(DownloadTask, payload)

Flow per target region: every peer's agent runs DOWNLOAD (fetch, check sha256/size, count the
checksum of a piece that is only part of its file, ImportSST.Download with the piece's range: the
store cuts the file to it), then the leader's agent runs INGEST (MultiIngest). When the restore
ends, however it ends, each store's agent runs DISCARD for what was staged there and never
ingested. CHECK_OBJECTS runs on `br.<cluster>.storage` before anything is touched. Bytes as hex;
nothing here holds a secret.
"""
from __future__ import annotations


from pydantic import Field

from br_common.backupmeta.kind import BackupKind
from br_common.checksum import Checksum
from br_common.fleet.messages import FileInfo, HexBytes, KeyRange, Message, StorageSpec, TaskResult
from br_common.kvproto import kvrpcpb_pb2, metapb_pb2

DOWNLOAD = "br.restore.download"
INGEST = "br.restore.ingest"
DISCARD = "br.restore.discard"
CHECK_OBJECTS = "br.storage.restore_check_objects"



class FilePart(Message):
    """The part of one backup file to restore (the whole file unless --start/--end cut it)."""

    file: FileInfo
    range: KeyRange

    @property
    def whole(self) -> bool:
        return self.range.start == self.file.start_key and self.range.end == self.file.end_key


class PeerRef(Message):
    id: int
    store_id: int

    def to_proto(self) -> metapb_pb2.Peer:
        return metapb_pb2.Peer(id=self.id, store_id=self.store_id)


class RegionRef(Message):
    """A target region as PD described it when the work was planned."""

    id: int
    start_key: HexBytes = b""
    end_key: HexBytes = b""
    conf_ver: int = 0
    version: int = 0
    peers: list[PeerRef] = Field(default_factory=list)
    leader: PeerRef | None = None

    def epoch(self) -> metapb_pb2.RegionEpoch:
        return metapb_pb2.RegionEpoch(conf_ver=self.conf_ver, version=self.version)

    def context(self, cluster_id: int = 0) -> kvrpcpb_pb2.Context:
        """kvrpcpb.Context for Ingest/MultiIngest: region id, epoch, the leader peer."""
        leader = self.leader.to_proto() if self.leader is not None else None
        return kvrpcpb_pb2.Context(region_id=self.id, region_epoch=self.epoch(), peer=leader, cluster_id=cluster_id)

    def same_placement(self, other: "RegionRef") -> bool:
        """Same region, epoch and peers (only the leader may differ): staged copies still fit."""
        return (self.id, self.conf_ver, self.version, self.start_key, self.end_key) == \
            (other.id, other.conf_ver, other.version, other.start_key, other.end_key) and \
            sorted((p.id, p.store_id) for p in self.peers) == sorted((p.id, p.store_id) for p in other.peers)


class Piece(Message):
    """The keys of `file` inside `range` go to one region; staged by every peer as `uuid`."""

    uuid: HexBytes
    file: FileInfo
    range: KeyRange
    part: KeyRange  # the FilePart this piece belongs to (pieces of one part tile it)

    @property
    def whole_file(self) -> bool:
        return self.range.start == self.file.start_key and self.range.end == self.file.end_key


class RegionWork(Message):
    region: RegionRef
    pieces: list[Piece]


class DownloadTask(Message):
    job_id: str
    attempt: str
    cluster_id: int
    store_id: int
    region: RegionRef
    pieces: list[Piece]
    restore_ts: int  # RewriteRule.new_timestamp of a raw restore (txn keys keep their commit ts)
    kind: BackupKind = BackupKind.RAW  # what the backup holds: Download's is_raw_kv follows from it
    rate_limit: int = 0  # bytes/s per store (storage reads and SetDownloadSpeedLimit), 0 = unlimited
    storage: StorageSpec


class StagedPiece(Message):
    """What a store staged for a piece (Download's answer); the leader ingests these."""

    uuid: HexBytes
    cf: str = "default"  # the column family of the piece's file (SSTMeta.cf_name at ingest)
    first_key: HexBytes = b""  # after rewrite, inclusive
    last_key: HexBytes = b""
    is_empty: bool = False
    length: int = 0
    checksum: Checksum | None = None  # of a piece that is part of its file (the agent counted it); None = whole


class DownloadResult(TaskResult):
    job_id: str
    attempt: str
    store_id: int
    agent: str
    region_id: int
    staged: list[StagedPiece] = Field(default_factory=list)
    bytes_downloaded: int = 0


class IngestTask(Message):
    job_id: str
    attempt: str
    cluster_id: int
    store_id: int
    region: RegionRef
    ssts: list[StagedPiece]


class IngestResult(TaskResult):
    job_id: str
    attempt: str
    store_id: int
    agent: str
    region_id: int
    leader: PeerRef | None = None  # a NotLeader hint


class DiscardTask(Message):
    """Staged imports this restore will never ingest (a failed, superseded or interrupted work)."""

    job_id: str
    cluster_id: int
    store_id: int
    uuids: list[HexBytes]
    # sent once the restore completed: also every staged SST of the job (uuids starting with this
    # tag), whatever run staged it; nothing of a completed job may stay staged
    job_tag: HexBytes = b""


class DiscardResult(TaskResult):
    store_id: int
    removed: int = 0  # skipped: why nothing was removed (no store_import_dir on this agent)


class ObjectRef(Message):
    name: str
    size: int


class CheckObjectsTask(Message):
    storage: StorageSpec
    objects: list[ObjectRef]


class CheckObjectsResult(TaskResult):
    problems: list[str] = Field(default_factory=list)  # one line per missing or resized object
