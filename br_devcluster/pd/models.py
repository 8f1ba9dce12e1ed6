"""PD metadata as pydantic models (what cluster.json holds) and their protobuf forms.

Region and Store objects are treated as immutable once published: changes build new objects
(model_copy), so a reader holding one outside the PD lock always sees a consistent region.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from br_common.kvproto import metapb_pb2

# what PD and the stores report as their release: a real TiKV/PD version, so that clients' version
# checks (BR's, TiDB's) parse and accept it; the devcluster names itself in git_hash instead
RELEASE_VERSION = "8.5.0"
GIT_HASH = "br-devcluster"
_BYTES_AS_BASE64 = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")


class Peer(BaseModel):
    id: int
    store_id: int

    def to_proto(self) -> metapb_pb2.Peer:
        return metapb_pb2.Peer(id=self.id, store_id=self.store_id)


class Region(BaseModel):
    model_config = _BYTES_AS_BASE64

    id: int
    start_key: bytes
    end_key: bytes  # b"" = unbounded
    conf_ver: int = 1
    version: int = 1
    peers: list[Peer]
    leader_store_id: int

    def contains(self, key: bytes) -> bool:
        return self.start_key <= key and (self.end_key == b"" or key < self.end_key)

    def peer_on(self, store_id: int) -> Peer | None:
        return next((p for p in self.peers if p.store_id == store_id), None)

    def leader(self) -> Peer | None:
        return self.peer_on(self.leader_store_id)

    def store_ids(self) -> list[int]:
        return [p.store_id for p in self.peers]

    def to_proto(self) -> metapb_pb2.Region:
        return metapb_pb2.Region(
            id=self.id, start_key=self.start_key, end_key=self.end_key,
            region_epoch=metapb_pb2.RegionEpoch(conf_ver=self.conf_ver, version=self.version),
            peers=[p.to_proto() for p in self.peers])


class Store(BaseModel):
    id: int
    address: str
    start_timestamp: int = 0  # unix seconds of first registration
    last_heartbeat: int = 0  # unix nanoseconds, as PD reports it

    def to_proto(self) -> metapb_pb2.Store:
        return metapb_pb2.Store(
            id=self.id, address=self.address, state=metapb_pb2.Up, version=RELEASE_VERSION, git_hash=GIT_HASH,
            status_address=self.address,  # no HTTP status server: the store's gRPC host:port
            start_timestamp=self.start_timestamp, last_heartbeat=self.last_heartbeat,
            node_state=metapb_pb2.Serving)


class ClusterFile(BaseModel):
    """Everything in cluster.json (TSO, ids and GC live in their own files)."""
    cluster_id: int
    member_id: int
    bootstrapped: bool = False
    stores: list[Store] = Field(default_factory=list)
    regions: list[Region] = Field(default_factory=list)
