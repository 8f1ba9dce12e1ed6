"""TiKV's transactional encodings, byte for byte: memcomparable keys with ~ts, varints, compact
bytes, and the Write (write CF) and Lock (lock CF) records.

Shared by the devcluster's Percolator store and by whatever reads or writes backup files in
TiKV's layout (agent, coordinator), so that all of them agree with a real TiKV on every byte.
Sources: tikv components/tikv_util/src/codec/{bytes,number}.rs, components/txn_types/src/
{types,write,lock}.rs (see ../shared/reference/tikv-txn.md, A1).

    encode_bytes(b"abc") == b"abc\\0\\0\\0\\0\\0\\xfa"
    append_ts(encode_bytes(b"k"), ts)          # write/default CF key: newest version first
    Write.parse(Write(WriteType.PUT, 5, short_value=b"v").to_bytes())
"""
from __future__ import annotations

import enum
from dataclasses import MISSING, dataclass, fields as dataclass_fields

# the engine's 'z' data-key prefix is defined once, in br_common.data_keys; re-exported for callers here
from br_common.data_keys import DATA_PREFIX, data_key, origin_key

__all__ = [
    "DATA_PREFIX", "data_key", "origin_key", "CodecError", "ENC_GROUP_SIZE", "ENC_MARKER",
    "TS_MAX", "SHORT_VALUE_MAX_LEN", "encode_bytes", "decode_bytes", "append_ts", "split_ts",
    "encode_u64", "encode_var_u64", "encode_var_i64", "encode_compact_bytes", "Reader",
    "WriteType", "Write", "LockType", "Lock", "is_short_value",
]

ENC_GROUP_SIZE = 8
ENC_MARKER = 0xFF
TS_MAX = (1 << 64) - 1
U64_SIZE = 8
SHORT_VALUE_MAX_LEN = 255
SHORT_VALUE_PREFIX = ord("v")
PROTECTED_ROLLBACK_SHORT_VALUE = b"p"
_MAX_VAR_U64_LEN = 10


class CodecError(ValueError):
    """Bytes that TiKV's codecs would reject (truncated, bad padding, unknown type)."""


# --- memcomparable bytes (Key::from_raw) ----------------------------------------------------

_PADDING = [bytes(pad) + bytes((ENC_MARKER - pad,)) for pad in range(ENC_GROUP_SIZE + 1)]
_GROUP_END = bytes((ENC_MARKER,))


def encode_bytes(raw: bytes) -> bytes:
    """Ascending memcomparable encoding: 8-byte groups, each followed by 0xFF - pad (the full
    groups joined by their 0xFF markers, then the padded last group: one pass, no per-byte work)."""
    full = len(raw) - len(raw) % ENC_GROUP_SIZE
    tail = raw[full:] + _PADDING[ENC_GROUP_SIZE - (len(raw) - full)]
    if not full:
        return tail
    if full == ENC_GROUP_SIZE:  # keys of 8..23 bytes (most keys): no list to build
        return raw[:8] + _GROUP_END + tail
    if full == 2 * ENC_GROUP_SIZE:
        return raw[:8] + _GROUP_END + raw[8:16] + _GROUP_END + tail
    groups = [raw[start:start + ENC_GROUP_SIZE] for start in range(0, full, ENC_GROUP_SIZE)]
    return _GROUP_END.join(groups) + _GROUP_END + tail


def decode_bytes(data: bytes) -> tuple[bytes, bytes]:
    """(raw key, rest): undoes encode_bytes and returns what follows it (e.g. a ts)."""
    parts = []
    chunk = ENC_GROUP_SIZE + 1
    offset, size = 0, len(data)
    while offset + chunk <= size:
        pad = ENC_MARKER - data[offset + ENC_GROUP_SIZE]
        if pad == 0:
            parts.append(data[offset:offset + ENC_GROUP_SIZE])
            offset += chunk
            continue
        if pad > ENC_GROUP_SIZE or data[offset + ENC_GROUP_SIZE - pad:offset + ENC_GROUP_SIZE] != _PADDING[pad][:pad]:
            raise CodecError(f"bad memcomparable padding in {data[:32].hex()}")
        parts.append(data[offset:offset + ENC_GROUP_SIZE - pad])
        return b"".join(parts), data[offset + chunk:]
    raise CodecError(f"truncated memcomparable key {data[:32].hex()}")


def append_ts(encoded: bytes, ts: int) -> bytes:
    """encoded key ‖ 8-byte big-endian ~ts, so that newer versions of a key sort first."""
    return encoded + encode_u64(TS_MAX ^ ts)


def split_ts(key: bytes) -> tuple[bytes, int]:
    """(encoded key, ts) of a versioned key (Key::split_on_ts_for)."""
    if len(key) < U64_SIZE:
        raise CodecError(f"key {key.hex()} too short to carry a ts")
    return key[:-U64_SIZE], TS_MAX ^ int.from_bytes(key[-U64_SIZE:], "big")


def ts_of(key: bytes) -> int:
    """The ts of a versioned engine key (split_ts without the length check, for hot loops over
    keys the engine holds)."""
    return TS_MAX ^ int.from_bytes(key[-U64_SIZE:], "big")


# --- numbers and compact bytes --------------------------------------------------------------

def encode_u64(value: int) -> bytes:
    if not 0 <= value <= TS_MAX:
        raise CodecError(f"{value} is not a u64")
    return value.to_bytes(U64_SIZE, "big")


def encode_var_u64(value: int) -> bytes:
    """LEB128: 7 bits a byte, low first, 0x80 on every byte but the last."""
    if not 0 <= value <= TS_MAX:
        raise CodecError(f"{value} is not a u64")
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_var_i64(value: int) -> bytes:
    """Zigzag then LEB128, as TiKV's encode_var_i64 (and Go's PutVarint)."""
    if not -(1 << 63) <= value < (1 << 63):
        raise CodecError(f"{value} is not an i64")
    return encode_var_u64(((value << 1) ^ (value >> 63)) & TS_MAX)


def encode_compact_bytes(data: bytes) -> bytes:
    return encode_var_i64(len(data)) + data


def read_var_u64(data: bytes, pos: int) -> tuple[int, int]:
    """(LEB128 value at pos, the position after it); CodecError when truncated or too long."""
    value = 0
    for shift in range(0, 7 * _MAX_VAR_U64_LEN, 7):
        if pos >= len(data):
            raise CodecError(f"record truncated: 1 bytes wanted at {pos} of {len(data)}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value > TS_MAX:
                raise CodecError("varint overflows u64")
            return value, pos
    raise CodecError("varint longer than 10 bytes")


class Reader:
    """A cursor over a record's bytes; every read past the end raises CodecError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def empty(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CodecError(f"record truncated: {n} bytes wanted at {self.pos} of {len(self.data)}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        pos = self.pos
        if pos >= len(self.data):
            raise CodecError(f"record truncated: 1 bytes wanted at {pos} of {len(self.data)}")
        self.pos = pos + 1
        return self.data[pos]

    def u64(self) -> int:
        return int.from_bytes(self.take(U64_SIZE), "big")

    def var_u64(self) -> int:
        value, self.pos = read_var_u64(self.data, self.pos)
        return value

    def var_i64(self) -> int:
        zigzag = self.var_u64()
        return (zigzag >> 1) ^ -(zigzag & 1)

    def compact_bytes(self) -> bytes:
        length = self.var_i64()
        if length < 0:
            raise CodecError(f"negative compact bytes length {length}")
        return self.take(length)


def is_short_value(value: bytes) -> bool:
    """Values up to 255 bytes live inline in the Write/Lock; longer ones in the default CF."""
    return len(value) <= SHORT_VALUE_MAX_LEN


def _short_value_bytes(value: bytes | None) -> bytes:
    if value is None:
        return b""
    if not is_short_value(value):
        raise CodecError(f"short value of {len(value)} bytes (max {SHORT_VALUE_MAX_LEN})")
    return bytes((SHORT_VALUE_PREFIX, len(value))) + value


def _last_change_bytes(tag: int, ts: int, versions: int) -> bytes:
    """LastChange::Unknown (0, 0) is not written; NotExist is (0, n>0), Exist (ts, n>0)."""
    if ts == 0 and versions == 0:
        return b""
    return bytes((tag,)) + encode_u64(ts) + encode_var_u64(versions)


# --- Write record (write CF value) ----------------------------------------------------------

class WriteType(enum.IntEnum):
    PUT = ord("P")
    DELETE = ord("D")
    LOCK = ord("L")
    ROLLBACK = ord("R")


_W_OVERLAPPED_ROLLBACK = ord("R")
_W_GC_FENCE = ord("F")
_W_LAST_CHANGE = ord("l")
_W_TXN_SOURCE = ord("S")


@dataclass(frozen=True)
class Write:
    """A commit (Put/Delete/Lock) or rollback record, stored at enc(key) ‖ ~commit_ts."""

    write_type: WriteType
    start_ts: int
    short_value: bytes | None = None
    has_overlapped_rollback: bool = False
    gc_fence: int | None = None
    last_change_ts: int = 0
    versions_to_last_change: int = 0
    txn_source: int = 0

    @classmethod
    def rollback(cls, start_ts: int, protected: bool) -> "Write":
        """A protected rollback (short value b"p") survives rollback collapsing."""
        return cls(WriteType.ROLLBACK, start_ts, PROTECTED_ROLLBACK_SHORT_VALUE if protected else None)

    def is_protected(self) -> bool:
        return self.write_type == WriteType.ROLLBACK and self.short_value == PROTECTED_ROLLBACK_SHORT_VALUE

    def check_gc_fence_as_latest_version(self, read_ts: int) -> bool:
        """False when the record was rewritten by an overlapped rollback and its newer version is gone."""
        return not self.gc_fence or self.gc_fence > read_ts

    def to_bytes(self) -> bytes:
        out = bytearray((self.write_type,)) + encode_var_u64(self.start_ts)
        out += _short_value_bytes(self.short_value)
        if self.has_overlapped_rollback:
            out.append(_W_OVERLAPPED_ROLLBACK)
        if self.gc_fence is not None:
            out += bytes((_W_GC_FENCE,)) + encode_u64(self.gc_fence)
        out += _last_change_bytes(_W_LAST_CHANGE, self.last_change_ts, self.versions_to_last_change)
        if self.txn_source:
            out += bytes((_W_TXN_SOURCE,)) + encode_var_u64(self.txn_source)
        return bytes(out)

    @classmethod
    def parse(cls, data: bytes) -> "Write":
        """WriteRef::parse: fields in order, stopping at an unknown tag (forward compatibility)."""
        fast = _parse_plain_write(data)
        if fast is not None:
            return fast
        reader = Reader(data)
        write_type = _enum_or_error(WriteType, reader.u8(), "write type")
        fields: dict = {"start_ts": reader.var_u64()}
        while not reader.empty:
            tag = reader.u8()
            if tag == SHORT_VALUE_PREFIX:
                fields["short_value"] = reader.take(reader.u8())
            elif tag == _W_OVERLAPPED_ROLLBACK:
                fields["has_overlapped_rollback"] = True
            elif tag == _W_GC_FENCE:
                fields["gc_fence"] = reader.u64()
            elif tag == _W_LAST_CHANGE:
                fields["last_change_ts"], fields["versions_to_last_change"] = reader.u64(), reader.var_u64()
            elif tag == _W_TXN_SOURCE:
                fields["txn_source"] = reader.var_u64()
            else:
                break
        return cls(write_type, **fields)


def _built(cls: type, defaults: dict, fields: dict):  # noqa: ANN205 - an instance of cls
    """A frozen dataclass instance from trusted field values without its __init__ (which sets
    each field through object.__setattr__: for Lock, 16 calls per record parsed)."""
    record = object.__new__(cls)
    record.__dict__.update(defaults, **fields)
    return record


_WRITE_TYPES = {int(t): t for t in WriteType}
_WRITE_DEFAULTS = {f.name: f.default for f in dataclass_fields(Write) if f.default is not MISSING}


def plain_write_fields(data: bytes) -> tuple[int, int, bytes | None] | None:
    """(type byte, start_ts, short value or None) of the common write record (type, start_ts and
    maybe a short value, nothing else), without building a Write: loops over every record of a
    file or a range call it. None for any other record, valid or not (Write.parse reads it)."""
    size = len(data)
    if not size or data[0] not in _WRITE_TYPES:
        return None
    try:
        start_ts, pos = read_var_u64(data, 1)
    except CodecError:
        return None
    if pos == size:
        return data[0], start_ts, None
    if data[pos] != SHORT_VALUE_PREFIX or pos + 1 >= size or pos + 2 + data[pos + 1] != size:
        return None
    return data[0], start_ts, data[pos + 2:]


def _parse_plain_write(data: bytes) -> Write | None:
    """The common record as a Write, without a Reader; None for anything else."""
    fields = plain_write_fields(data)
    if fields is None:
        return None
    write_type, start_ts, short_value = fields
    return _built(Write, _WRITE_DEFAULTS, {"write_type": _WRITE_TYPES[write_type], "start_ts": start_ts,
                                           "short_value": short_value})


# --- Lock record (lock CF value) ------------------------------------------------------------

class LockType(enum.IntEnum):
    PUT = ord("P")
    DELETE = ord("D")
    LOCK = ord("L")
    PESSIMISTIC = ord("S")

    def write_type(self) -> WriteType | None:
        """The Write a committed lock of this type becomes (None: pessimistic locks never commit)."""
        return _COMMITS_AS.get(self)


_COMMITS_AS = {LockType.PUT: WriteType.PUT, LockType.DELETE: WriteType.DELETE, LockType.LOCK: WriteType.LOCK}
_L_FOR_UPDATE_TS = ord("f")
_L_TXN_SIZE = ord("t")
_L_MIN_COMMIT_TS = ord("c")
_L_ASYNC_COMMIT = ord("a")
_L_ROLLBACK_TS = ord("r")
_L_LAST_CHANGE = ord("l")
_L_TXN_SOURCE = ord("s")
_L_LOCKED_WITH_CONFLICT = ord("F")
_L_GENERATION = ord("g")


@dataclass(frozen=True)
class Lock:
    """A Percolator lock, stored at enc(key) in the lock CF (no ts)."""

    lock_type: LockType
    primary: bytes
    ts: int
    ttl: int = 0
    short_value: bytes | None = None
    for_update_ts: int = 0
    txn_size: int = 0
    min_commit_ts: int = 0
    use_async_commit: bool = False
    secondaries: tuple[bytes, ...] = ()
    rollback_ts: tuple[int, ...] = ()
    last_change_ts: int = 0
    versions_to_last_change: int = 0
    txn_source: int = 0
    is_locked_with_conflict: bool = False
    generation: int = 0

    def to_bytes(self) -> bytes:
        out = bytearray((self.lock_type,)) + encode_compact_bytes(self.primary)
        out += encode_var_u64(self.ts) + encode_var_u64(self.ttl)
        out += _short_value_bytes(self.short_value)
        out += self._optional_u64s()
        if self.use_async_commit:
            out += bytes((_L_ASYNC_COMMIT,)) + encode_var_u64(len(self.secondaries))
            out += b"".join(encode_compact_bytes(k) for k in self.secondaries)
        if self.rollback_ts:
            out += bytes((_L_ROLLBACK_TS,)) + encode_var_u64(len(self.rollback_ts))
            out += b"".join(encode_u64(ts) for ts in self.rollback_ts)
        out += _last_change_bytes(_L_LAST_CHANGE, self.last_change_ts, self.versions_to_last_change)
        if self.txn_source:
            out += bytes((_L_TXN_SOURCE,)) + encode_var_u64(self.txn_source)
        if self.is_locked_with_conflict:
            out.append(_L_LOCKED_WITH_CONFLICT)
        if self.generation:
            out += bytes((_L_GENERATION,)) + encode_u64(self.generation)
        return bytes(out)

    def _optional_u64s(self) -> bytes:
        pairs = ((_L_FOR_UPDATE_TS, self.for_update_ts), (_L_TXN_SIZE, self.txn_size),
                 (_L_MIN_COMMIT_TS, self.min_commit_ts))
        return b"".join(bytes((tag,)) + encode_u64(value) for tag, value in pairs if value)

    @classmethod
    def parse(cls, data: bytes) -> "Lock":
        """Lock::parse: ttl may be absent (old locks); stops at an unknown tag."""
        fast = _parse_plain_lock(data)
        if fast is not None:
            return fast
        reader = Reader(data)
        if reader.empty:
            raise CodecError("empty lock record")
        lock_type = _enum_or_error(LockType, reader.u8(), "lock type")
        primary, ts = reader.compact_bytes(), reader.var_u64()
        fields: dict = {"ttl": 0 if reader.empty else reader.var_u64()}
        while not reader.empty:
            if not _parse_lock_tag(reader, reader.u8(), fields):
                break
        return cls(lock_type, primary, ts, **fields)


_LOCK_TYPES = {int(t): t for t in LockType}
_LOCK_DEFAULTS = {f.name: f.default for f in dataclass_fields(Lock) if f.default is not MISSING}
_LOCK_U64_TAGS = {_L_FOR_UPDATE_TS: "for_update_ts", _L_TXN_SIZE: "txn_size", _L_MIN_COMMIT_TS: "min_commit_ts",
                  _L_GENERATION: "generation"}


def _parse_plain_lock(data: bytes) -> Lock | None:
    """The common lock (no async commit, rollback ts, last change, source or conflict flag) by
    position, without a Reader; None for anything else or anything malformed (Lock.parse then
    reads it field by field, and reports what is wrong)."""
    try:
        lock_type = _LOCK_TYPES.get(data[0])
        if lock_type is None:
            return None
        length, pos = read_var_u64(data, 1)
        length = (length >> 1) ^ -(length & 1)
        if length < 0 or pos + length > len(data):
            return None
        primary = data[pos:pos + length]
        ts, pos = read_var_u64(data, pos + length)
        fields: dict = {}
        if pos < len(data):
            fields["ttl"], pos = read_var_u64(data, pos)
        while pos < len(data):
            tag = data[pos]
            if tag == SHORT_VALUE_PREFIX:
                end = pos + 2 + data[pos + 1]
                if end > len(data):
                    return None
                fields["short_value"] = data[pos + 2:end]
                pos = end
            elif tag in _LOCK_U64_TAGS and pos + 1 + U64_SIZE <= len(data):
                fields[_LOCK_U64_TAGS[tag]] = int.from_bytes(data[pos + 1:pos + 1 + U64_SIZE], "big")
                pos += 1 + U64_SIZE
            else:
                return None
    except (IndexError, CodecError):
        return None
    fields.update(lock_type=lock_type, primary=primary, ts=ts)
    return _built(Lock, _LOCK_DEFAULTS, fields)


def _parse_lock_tag(reader: Reader, tag: int, fields: dict) -> bool:
    """Reads one tagged field of a Lock into fields; False on an unknown tag."""
    if tag == SHORT_VALUE_PREFIX:
        fields["short_value"] = reader.take(reader.u8())
    elif tag in (_L_FOR_UPDATE_TS, _L_TXN_SIZE, _L_MIN_COMMIT_TS, _L_GENERATION):
        name = {_L_FOR_UPDATE_TS: "for_update_ts", _L_TXN_SIZE: "txn_size",
                _L_MIN_COMMIT_TS: "min_commit_ts", _L_GENERATION: "generation"}[tag]
        fields[name] = reader.u64()
    elif tag == _L_ASYNC_COMMIT:
        fields["use_async_commit"] = True
        fields["secondaries"] = tuple(reader.compact_bytes() for _ in range(reader.var_u64()))
    elif tag == _L_ROLLBACK_TS:
        fields["rollback_ts"] = tuple(reader.u64() for _ in range(reader.var_u64()))
    elif tag == _L_LAST_CHANGE:
        fields["last_change_ts"], fields["versions_to_last_change"] = reader.u64(), reader.var_u64()
    elif tag == _L_TXN_SOURCE:
        fields["txn_source"] = reader.var_u64()
    elif tag == _L_LOCKED_WITH_CONFLICT:
        fields["is_locked_with_conflict"] = True
    else:
        return False
    return True


def _enum_or_error(kind: type[enum.IntEnum], value: int, what: str):
    try:
        return kind(value)
    except ValueError:
        raise CodecError(f"unknown {what} {value:#04x}") from None
