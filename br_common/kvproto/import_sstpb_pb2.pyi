from . import metapb_pb2 as _metapb_pb2
from . import errorpb_pb2 as _errorpb_pb2
from . import kvrpcpb_pb2 as _kvrpcpb_pb2
from . import brpb_pb2 as _brpb_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SwitchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    Normal: _ClassVar[SwitchMode]
    Import: _ClassVar[SwitchMode]

class DownloadRequestType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    Legacy: _ClassVar[DownloadRequestType]
    Keyspace: _ClassVar[DownloadRequestType]
Normal: SwitchMode
Import: SwitchMode
Legacy: DownloadRequestType
Keyspace: DownloadRequestType

class Range(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: bytes
    end: bytes
    def __init__(self, start: _Optional[bytes] = ..., end: _Optional[bytes] = ...) -> None: ...

class SwitchModeRequest(_message.Message):
    __slots__ = ("mode", "ranges")
    MODE_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    mode: SwitchMode
    ranges: _containers.RepeatedCompositeFieldContainer[Range]
    def __init__(self, mode: _Optional[_Union[SwitchMode, str]] = ..., ranges: _Optional[_Iterable[_Union[Range, _Mapping]]] = ...) -> None: ...

class SwitchModeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModeResponse(_message.Message):
    __slots__ = ("mode",)
    MODE_FIELD_NUMBER: _ClassVar[int]
    mode: SwitchMode
    def __init__(self, mode: _Optional[_Union[SwitchMode, str]] = ...) -> None: ...

class SSTMeta(_message.Message):
    __slots__ = ("uuid", "range", "crc32", "length", "cf_name", "region_id", "region_epoch", "end_key_exclusive", "total_kvs", "total_bytes", "api_version", "cipher_iv")
    UUID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    CF_NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    END_KEY_EXCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_KVS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    CIPHER_IV_FIELD_NUMBER: _ClassVar[int]
    uuid: bytes
    range: Range
    crc32: int
    length: int
    cf_name: str
    region_id: int
    region_epoch: _metapb_pb2.RegionEpoch
    end_key_exclusive: bool
    total_kvs: int
    total_bytes: int
    api_version: _kvrpcpb_pb2.APIVersion
    cipher_iv: bytes
    def __init__(self, uuid: _Optional[bytes] = ..., range: _Optional[_Union[Range, _Mapping]] = ..., crc32: _Optional[int] = ..., length: _Optional[int] = ..., cf_name: _Optional[str] = ..., region_id: _Optional[int] = ..., region_epoch: _Optional[_Union[_metapb_pb2.RegionEpoch, _Mapping]] = ..., end_key_exclusive: _Optional[bool] = ..., total_kvs: _Optional[int] = ..., total_bytes: _Optional[int] = ..., api_version: _Optional[_Union[_kvrpcpb_pb2.APIVersion, str]] = ..., cipher_iv: _Optional[bytes] = ...) -> None: ...

class RewriteRule(_message.Message):
    __slots__ = ("old_key_prefix", "new_key_prefix", "new_timestamp", "ignore_after_timestamp", "ignore_before_timestamp")
    OLD_KEY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    NEW_KEY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    NEW_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    IGNORE_AFTER_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    IGNORE_BEFORE_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    old_key_prefix: bytes
    new_key_prefix: bytes
    new_timestamp: int
    ignore_after_timestamp: int
    ignore_before_timestamp: int
    def __init__(self, old_key_prefix: _Optional[bytes] = ..., new_key_prefix: _Optional[bytes] = ..., new_timestamp: _Optional[int] = ..., ignore_after_timestamp: _Optional[int] = ..., ignore_before_timestamp: _Optional[int] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("context", "sst")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SST_FIELD_NUMBER: _ClassVar[int]
    context: _kvrpcpb_pb2.Context
    sst: SSTMeta
    def __init__(self, context: _Optional[_Union[_kvrpcpb_pb2.Context, _Mapping]] = ..., sst: _Optional[_Union[SSTMeta, _Mapping]] = ...) -> None: ...

class MultiIngestRequest(_message.Message):
    __slots__ = ("context", "ssts")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SSTS_FIELD_NUMBER: _ClassVar[int]
    context: _kvrpcpb_pb2.Context
    ssts: _containers.RepeatedCompositeFieldContainer[SSTMeta]
    def __init__(self, context: _Optional[_Union[_kvrpcpb_pb2.Context, _Mapping]] = ..., ssts: _Optional[_Iterable[_Union[SSTMeta, _Mapping]]] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("error",)
    ERROR_FIELD_NUMBER: _ClassVar[int]
    error: _errorpb_pb2.Error
    def __init__(self, error: _Optional[_Union[_errorpb_pb2.Error, _Mapping]] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("ssts", "resolved_ts", "sst", "name", "rewrite_rule", "sorted_rewrite_rules", "storage_backend", "storage_cache_id", "is_raw_kv", "cipher_info", "request_type", "context")
    class SstsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SSTMeta
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SSTMeta, _Mapping]] = ...) -> None: ...
    SSTS_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_TS_FIELD_NUMBER: _ClassVar[int]
    SST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REWRITE_RULE_FIELD_NUMBER: _ClassVar[int]
    SORTED_REWRITE_RULES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BACKEND_FIELD_NUMBER: _ClassVar[int]
    STORAGE_CACHE_ID_FIELD_NUMBER: _ClassVar[int]
    IS_RAW_KV_FIELD_NUMBER: _ClassVar[int]
    CIPHER_INFO_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ssts: _containers.MessageMap[str, SSTMeta]
    resolved_ts: int
    sst: SSTMeta
    name: str
    rewrite_rule: RewriteRule
    sorted_rewrite_rules: _containers.RepeatedCompositeFieldContainer[RewriteRule]
    storage_backend: _brpb_pb2.StorageBackend
    storage_cache_id: str
    is_raw_kv: bool
    cipher_info: _brpb_pb2.CipherInfo
    request_type: DownloadRequestType
    context: _kvrpcpb_pb2.Context
    def __init__(self, ssts: _Optional[_Mapping[str, SSTMeta]] = ..., resolved_ts: _Optional[int] = ..., sst: _Optional[_Union[SSTMeta, _Mapping]] = ..., name: _Optional[str] = ..., rewrite_rule: _Optional[_Union[RewriteRule, _Mapping]] = ..., sorted_rewrite_rules: _Optional[_Iterable[_Union[RewriteRule, _Mapping]]] = ..., storage_backend: _Optional[_Union[_brpb_pb2.StorageBackend, _Mapping]] = ..., storage_cache_id: _Optional[str] = ..., is_raw_kv: _Optional[bool] = ..., cipher_info: _Optional[_Union[_brpb_pb2.CipherInfo, _Mapping]] = ..., request_type: _Optional[_Union[DownloadRequestType, str]] = ..., context: _Optional[_Union[_kvrpcpb_pb2.Context, _Mapping]] = ...) -> None: ...

class DownloadResponse(_message.Message):
    __slots__ = ("range", "is_empty", "error", "crc32", "length", "ssts")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    IS_EMPTY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    SSTS_FIELD_NUMBER: _ClassVar[int]
    range: Range
    is_empty: bool
    error: Error
    crc32: int
    length: int
    ssts: _containers.RepeatedCompositeFieldContainer[SSTMeta]
    def __init__(self, range: _Optional[_Union[Range, _Mapping]] = ..., is_empty: _Optional[bool] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., crc32: _Optional[int] = ..., length: _Optional[int] = ..., ssts: _Optional[_Iterable[_Union[SSTMeta, _Mapping]]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("message", "store_error")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STORE_ERROR_FIELD_NUMBER: _ClassVar[int]
    message: str
    store_error: _errorpb_pb2.Error
    def __init__(self, message: _Optional[str] = ..., store_error: _Optional[_Union[_errorpb_pb2.Error, _Mapping]] = ...) -> None: ...

class SetDownloadSpeedLimitRequest(_message.Message):
    __slots__ = ("speed_limit", "task_id", "ttl_seconds")
    SPEED_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    speed_limit: int
    task_id: str
    ttl_seconds: int
    def __init__(self, speed_limit: _Optional[int] = ..., task_id: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class SetDownloadSpeedLimitResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
