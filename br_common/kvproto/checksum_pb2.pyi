from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChecksumScanOn(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    Table: _ClassVar[ChecksumScanOn]
    Index: _ClassVar[ChecksumScanOn]

class ChecksumAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    Crc64_Xor: _ClassVar[ChecksumAlgorithm]
Table: ChecksumScanOn
Index: ChecksumScanOn
Crc64_Xor: ChecksumAlgorithm

class ChecksumRewriteRule(_message.Message):
    __slots__ = ("old_prefix", "new_prefix")
    OLD_PREFIX_FIELD_NUMBER: _ClassVar[int]
    NEW_PREFIX_FIELD_NUMBER: _ClassVar[int]
    old_prefix: bytes
    new_prefix: bytes
    def __init__(self, old_prefix: _Optional[bytes] = ..., new_prefix: _Optional[bytes] = ...) -> None: ...

class ChecksumRequest(_message.Message):
    __slots__ = ("start_ts_fallback", "scan_on", "algorithm", "rule")
    START_TS_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    SCAN_ON_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    start_ts_fallback: int
    scan_on: ChecksumScanOn
    algorithm: ChecksumAlgorithm
    rule: ChecksumRewriteRule
    def __init__(self, start_ts_fallback: _Optional[int] = ..., scan_on: _Optional[_Union[ChecksumScanOn, str]] = ..., algorithm: _Optional[_Union[ChecksumAlgorithm, str]] = ..., rule: _Optional[_Union[ChecksumRewriteRule, _Mapping]] = ...) -> None: ...

class ChecksumResponse(_message.Message):
    __slots__ = ("checksum", "total_kvs", "total_bytes")
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    TOTAL_KVS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    checksum: int
    total_kvs: int
    total_bytes: int
    def __init__(self, checksum: _Optional[int] = ..., total_kvs: _Optional[int] = ..., total_bytes: _Optional[int] = ...) -> None: ...
