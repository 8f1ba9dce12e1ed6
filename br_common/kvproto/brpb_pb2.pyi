from . import errorpb_pb2 as _errorpb_pb2
from . import kvrpcpb_pb2 as _kvrpcpb_pb2
from . import encryptionpb_pb2 as _encryptionpb_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CompressionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN: _ClassVar[CompressionType]
    LZ4: _ClassVar[CompressionType]
    SNAPPY: _ClassVar[CompressionType]
    ZSTD: _ClassVar[CompressionType]

class BackupMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCAN: _ClassVar[BackupMode]
    FILE: _ClassVar[BackupMode]

class MetaVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    V1: _ClassVar[MetaVersion]
    V2: _ClassVar[MetaVersion]
UNKNOWN: CompressionType
LZ4: CompressionType
SNAPPY: CompressionType
ZSTD: CompressionType
SCAN: BackupMode
FILE: BackupMode
V1: MetaVersion
V2: MetaVersion

class BackupRequest(_message.Message):
    __slots__ = ("cluster_id", "start_key", "end_key", "start_version", "end_version", "rate_limit", "concurrency", "storage_backend", "is_raw_kv", "cf", "compression_type", "compression_level", "cipher_info", "dst_api_version", "sub_ranges", "replica_read", "mode", "unique_id", "context")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    START_VERSION_FIELD_NUMBER: _ClassVar[int]
    END_VERSION_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BACKEND_FIELD_NUMBER: _ClassVar[int]
    IS_RAW_KV_FIELD_NUMBER: _ClassVar[int]
    CF_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_TYPE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    CIPHER_INFO_FIELD_NUMBER: _ClassVar[int]
    DST_API_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUB_RANGES_FIELD_NUMBER: _ClassVar[int]
    REPLICA_READ_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    start_key: bytes
    end_key: bytes
    start_version: int
    end_version: int
    rate_limit: int
    concurrency: int
    storage_backend: StorageBackend
    is_raw_kv: bool
    cf: str
    compression_type: CompressionType
    compression_level: int
    cipher_info: CipherInfo
    dst_api_version: _kvrpcpb_pb2.APIVersion
    sub_ranges: _containers.RepeatedCompositeFieldContainer[_kvrpcpb_pb2.KeyRange]
    replica_read: bool
    mode: BackupMode
    unique_id: str
    context: _kvrpcpb_pb2.Context
    def __init__(self, cluster_id: _Optional[int] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ..., start_version: _Optional[int] = ..., end_version: _Optional[int] = ..., rate_limit: _Optional[int] = ..., concurrency: _Optional[int] = ..., storage_backend: _Optional[_Union[StorageBackend, _Mapping]] = ..., is_raw_kv: _Optional[bool] = ..., cf: _Optional[str] = ..., compression_type: _Optional[_Union[CompressionType, str]] = ..., compression_level: _Optional[int] = ..., cipher_info: _Optional[_Union[CipherInfo, _Mapping]] = ..., dst_api_version: _Optional[_Union[_kvrpcpb_pb2.APIVersion, str]] = ..., sub_ranges: _Optional[_Iterable[_Union[_kvrpcpb_pb2.KeyRange, _Mapping]]] = ..., replica_read: _Optional[bool] = ..., mode: _Optional[_Union[BackupMode, str]] = ..., unique_id: _Optional[str] = ..., context: _Optional[_Union[_kvrpcpb_pb2.Context, _Mapping]] = ...) -> None: ...

class BackupResponse(_message.Message):
    __slots__ = ("error", "start_key", "end_key", "files", "api_version")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    error: Error
    start_key: bytes
    end_key: bytes
    files: _containers.RepeatedCompositeFieldContainer[File]
    api_version: _kvrpcpb_pb2.APIVersion
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ..., files: _Optional[_Iterable[_Union[File, _Mapping]]] = ..., api_version: _Optional[_Union[_kvrpcpb_pb2.APIVersion, str]] = ...) -> None: ...

class ClusterIDError(_message.Message):
    __slots__ = ("current", "request")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    current: int
    request: int
    def __init__(self, current: _Optional[int] = ..., request: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("msg", "cluster_id_error", "kv_error", "region_error")
    MSG_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_ERROR_FIELD_NUMBER: _ClassVar[int]
    KV_ERROR_FIELD_NUMBER: _ClassVar[int]
    REGION_ERROR_FIELD_NUMBER: _ClassVar[int]
    msg: str
    cluster_id_error: ClusterIDError
    kv_error: _kvrpcpb_pb2.KeyError
    region_error: _errorpb_pb2.Error
    def __init__(self, msg: _Optional[str] = ..., cluster_id_error: _Optional[_Union[ClusterIDError, _Mapping]] = ..., kv_error: _Optional[_Union[_kvrpcpb_pb2.KeyError, _Mapping]] = ..., region_error: _Optional[_Union[_errorpb_pb2.Error, _Mapping]] = ...) -> None: ...

class CipherInfo(_message.Message):
    __slots__ = ("cipher_type", "cipher_key")
    CIPHER_TYPE_FIELD_NUMBER: _ClassVar[int]
    CIPHER_KEY_FIELD_NUMBER: _ClassVar[int]
    cipher_type: _encryptionpb_pb2.EncryptionMethod
    cipher_key: bytes
    def __init__(self, cipher_type: _Optional[_Union[_encryptionpb_pb2.EncryptionMethod, str]] = ..., cipher_key: _Optional[bytes] = ...) -> None: ...

class StorageBackend(_message.Message):
    __slots__ = ("noop", "local", "s3")
    NOOP_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    S3_FIELD_NUMBER: _ClassVar[int]
    noop: Noop
    local: Local
    s3: S3
    def __init__(self, noop: _Optional[_Union[Noop, _Mapping]] = ..., local: _Optional[_Union[Local, _Mapping]] = ..., s3: _Optional[_Union[S3, _Mapping]] = ...) -> None: ...

class Noop(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Local(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class S3(_message.Message):
    __slots__ = ("endpoint", "region", "bucket", "prefix", "storage_class", "sse", "acl", "access_key", "secret_access_key", "force_path_style", "sse_kms_key_id", "role_arn", "external_id", "object_lock_enabled", "session_token", "provider", "profile")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    STORAGE_CLASS_FIELD_NUMBER: _ClassVar[int]
    SSE_FIELD_NUMBER: _ClassVar[int]
    ACL_FIELD_NUMBER: _ClassVar[int]
    ACCESS_KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_ACCESS_KEY_FIELD_NUMBER: _ClassVar[int]
    FORCE_PATH_STYLE_FIELD_NUMBER: _ClassVar[int]
    SSE_KMS_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_ARN_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_LOCK_ENABLED_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    region: str
    bucket: str
    prefix: str
    storage_class: str
    sse: str
    acl: str
    access_key: str
    secret_access_key: str
    force_path_style: bool
    sse_kms_key_id: str
    role_arn: str
    external_id: str
    object_lock_enabled: bool
    session_token: str
    provider: str
    profile: str
    def __init__(self, endpoint: _Optional[str] = ..., region: _Optional[str] = ..., bucket: _Optional[str] = ..., prefix: _Optional[str] = ..., storage_class: _Optional[str] = ..., sse: _Optional[str] = ..., acl: _Optional[str] = ..., access_key: _Optional[str] = ..., secret_access_key: _Optional[str] = ..., force_path_style: _Optional[bool] = ..., sse_kms_key_id: _Optional[str] = ..., role_arn: _Optional[str] = ..., external_id: _Optional[str] = ..., object_lock_enabled: _Optional[bool] = ..., session_token: _Optional[str] = ..., provider: _Optional[str] = ..., profile: _Optional[str] = ...) -> None: ...

class File(_message.Message):
    __slots__ = ("name", "sha256", "start_key", "end_key", "start_version", "end_version", "crc64xor", "total_kvs", "total_bytes", "cf", "size", "cipher_iv")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    START_VERSION_FIELD_NUMBER: _ClassVar[int]
    END_VERSION_FIELD_NUMBER: _ClassVar[int]
    CRC64XOR_FIELD_NUMBER: _ClassVar[int]
    TOTAL_KVS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    CF_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CIPHER_IV_FIELD_NUMBER: _ClassVar[int]
    name: str
    sha256: bytes
    start_key: bytes
    end_key: bytes
    start_version: int
    end_version: int
    crc64xor: int
    total_kvs: int
    total_bytes: int
    cf: str
    size: int
    cipher_iv: bytes
    def __init__(self, name: _Optional[str] = ..., sha256: _Optional[bytes] = ..., start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ..., start_version: _Optional[int] = ..., end_version: _Optional[int] = ..., crc64xor: _Optional[int] = ..., total_kvs: _Optional[int] = ..., total_bytes: _Optional[int] = ..., cf: _Optional[str] = ..., size: _Optional[int] = ..., cipher_iv: _Optional[bytes] = ...) -> None: ...

class RawRange(_message.Message):
    __slots__ = ("start_key", "end_key", "cf")
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    CF_FIELD_NUMBER: _ClassVar[int]
    start_key: bytes
    end_key: bytes
    cf: str
    def __init__(self, start_key: _Optional[bytes] = ..., end_key: _Optional[bytes] = ..., cf: _Optional[str] = ...) -> None: ...

class BackupMeta(_message.Message):
    __slots__ = ("cluster_id", "cluster_version", "br_version", "version", "files", "start_version", "end_version", "is_raw_kv", "raw_ranges", "backup_result", "api_version", "is_txn_kv", "mode", "backup_size")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    BR_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    START_VERSION_FIELD_NUMBER: _ClassVar[int]
    END_VERSION_FIELD_NUMBER: _ClassVar[int]
    IS_RAW_KV_FIELD_NUMBER: _ClassVar[int]
    RAW_RANGES_FIELD_NUMBER: _ClassVar[int]
    BACKUP_RESULT_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    IS_TXN_KV_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    BACKUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    cluster_version: str
    br_version: str
    version: int
    files: _containers.RepeatedCompositeFieldContainer[File]
    start_version: int
    end_version: int
    is_raw_kv: bool
    raw_ranges: _containers.RepeatedCompositeFieldContainer[RawRange]
    backup_result: str
    api_version: _kvrpcpb_pb2.APIVersion
    is_txn_kv: bool
    mode: BackupMode
    backup_size: int
    def __init__(self, cluster_id: _Optional[int] = ..., cluster_version: _Optional[str] = ..., br_version: _Optional[str] = ..., version: _Optional[int] = ..., files: _Optional[_Iterable[_Union[File, _Mapping]]] = ..., start_version: _Optional[int] = ..., end_version: _Optional[int] = ..., is_raw_kv: _Optional[bool] = ..., raw_ranges: _Optional[_Iterable[_Union[RawRange, _Mapping]]] = ..., backup_result: _Optional[str] = ..., api_version: _Optional[_Union[_kvrpcpb_pb2.APIVersion, str]] = ..., is_txn_kv: _Optional[bool] = ..., mode: _Optional[_Union[BackupMode, str]] = ..., backup_size: _Optional[int] = ...) -> None: ...
