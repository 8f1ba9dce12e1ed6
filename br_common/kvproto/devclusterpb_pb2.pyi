from . import metapb_pb2 as _metapb_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PutStoreRequest(_message.Message):
    __slots__ = ("cluster_id", "store")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    store: _metapb_pb2.Store
    def __init__(self, cluster_id: _Optional[int] = ..., store: _Optional[_Union[_metapb_pb2.Store, _Mapping]] = ...) -> None: ...

class PutStoreResponse(_message.Message):
    __slots__ = ("cluster_id", "store_id")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    store_id: int
    def __init__(self, cluster_id: _Optional[int] = ..., store_id: _Optional[int] = ...) -> None: ...

class TransferLeaderRequest(_message.Message):
    __slots__ = ("cluster_id", "region_id", "to_store_id")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    TO_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    region_id: int
    to_store_id: int
    def __init__(self, cluster_id: _Optional[int] = ..., region_id: _Optional[int] = ..., to_store_id: _Optional[int] = ...) -> None: ...

class SplitRegionRequest(_message.Message):
    __slots__ = ("cluster_id", "split_key")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_KEY_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    split_key: bytes
    def __init__(self, cluster_id: _Optional[int] = ..., split_key: _Optional[bytes] = ...) -> None: ...

class CommitPeerChangeRequest(_message.Message):
    __slots__ = ("cluster_id", "region_id", "region_epoch", "peers", "leader_store_id")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    LEADER_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    region_id: int
    region_epoch: _metapb_pb2.RegionEpoch
    peers: _containers.RepeatedCompositeFieldContainer[_metapb_pb2.Peer]
    leader_store_id: int
    def __init__(self, cluster_id: _Optional[int] = ..., region_id: _Optional[int] = ..., region_epoch: _Optional[_Union[_metapb_pb2.RegionEpoch, _Mapping]] = ..., peers: _Optional[_Iterable[_Union[_metapb_pb2.Peer, _Mapping]]] = ..., leader_store_id: _Optional[int] = ...) -> None: ...

class AdminResponse(_message.Message):
    __slots__ = ("error", "region")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    error: str
    region: _metapb_pb2.Region
    def __init__(self, error: _Optional[str] = ..., region: _Optional[_Union[_metapb_pb2.Region, _Mapping]] = ...) -> None: ...

class RawEntry(_message.Message):
    __slots__ = ("key", "value", "delete", "cf")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    CF_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    delete: bool
    cf: str
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., delete: _Optional[bool] = ..., cf: _Optional[str] = ...) -> None: ...

class RangeDeletion(_message.Message):
    __slots__ = ("cf", "start_key", "end_key")
    CF_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    cf: str
    start_key: bytes
    end_key: bytes
    def __init__(self, cf: _Optional[str] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ...) -> None: ...

class ApplyWritesRequest(_message.Message):
    __slots__ = ("cluster_id", "region_id", "entries", "delete_ranges")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    DELETE_RANGES_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    region_id: int
    entries: _containers.RepeatedCompositeFieldContainer[RawEntry]
    delete_ranges: _containers.RepeatedCompositeFieldContainer[RangeDeletion]
    def __init__(self, cluster_id: _Optional[int] = ..., region_id: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[RawEntry, _Mapping]]] = ..., delete_ranges: _Optional[_Iterable[_Union[RangeDeletion, _Mapping]]] = ...) -> None: ...

class IngestReplicaRequest(_message.Message):
    __slots__ = ("cluster_id", "region_id", "uuids")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    UUIDS_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    region_id: int
    uuids: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, cluster_id: _Optional[int] = ..., region_id: _Optional[int] = ..., uuids: _Optional[_Iterable[bytes]] = ...) -> None: ...

class MigratePeerRequest(_message.Message):
    __slots__ = ("cluster_id", "region_id", "from_store_id", "to_store_id", "new_peer_id")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    TO_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_PEER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    region_id: int
    from_store_id: int
    to_store_id: int
    new_peer_id: int
    def __init__(self, cluster_id: _Optional[int] = ..., region_id: _Optional[int] = ..., from_store_id: _Optional[int] = ..., to_store_id: _Optional[int] = ..., new_peer_id: _Optional[int] = ...) -> None: ...

class DropRangeRequest(_message.Message):
    __slots__ = ("cluster_id", "start_key", "end_key")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    start_key: bytes
    end_key: bytes
    def __init__(self, cluster_id: _Optional[int] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ...) -> None: ...
