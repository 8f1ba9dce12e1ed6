"""crc64xor / total_kvs / total_bytes, as TiKV's RawChecksum and BR's backup.File define them.

crc64 is CRC-64/XZ (ECMA-182 reflected, init and xorout all ones), computed by the
Rust-backed fastcrc; the checksum of a set of pairs is the XOR of crc64(key || value).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from fastcrc import crc64
from pydantic import BaseModel


def crc64_xz(data: bytes) -> int:
    return crc64.xz(data)


class Checksum(BaseModel):
    """An order-independent summary of a set of key/value pairs; adding is XOR and sums."""

    crc64xor: int = 0
    total_kvs: int = 0
    total_bytes: int = 0

    def add(self, key: bytes, value: bytes) -> None:
        self.crc64xor ^= crc64.xz(key + value)
        self.total_kvs += 1
        self.total_bytes += len(key) + len(value)

    def add_pairs(self, pairs: Iterable[tuple[bytes, bytes]]) -> "Checksum":
        xz = crc64.xz
        crc, kvs, size = self.crc64xor, self.total_kvs, self.total_bytes
        for key, value in pairs:
            crc ^= xz(key + value)
            kvs += 1
            size += len(key) + len(value)
        self.crc64xor, self.total_kvs, self.total_bytes = crc, kvs, size
        return self

    def merge(self, other: "Checksum") -> "Checksum":
        return Checksum(crc64xor=self.crc64xor ^ other.crc64xor,
                        total_kvs=self.total_kvs + other.total_kvs,
                        total_bytes=self.total_bytes + other.total_bytes)

    def __str__(self) -> str:
        return f"crc64xor={self.crc64xor:#018x} total_kvs={self.total_kvs} total_bytes={self.total_bytes}"


class RunningChecksum:
    """Checksum's counters as plain slots, for adding one pair at a time in a hot loop (a backup
    or a Coprocessor checksum adds every key; a pydantic model checks every assignment)."""

    __slots__ = ("crc64xor", "total_kvs", "total_bytes")

    def __init__(self) -> None:
        self.crc64xor = self.total_kvs = self.total_bytes = 0

    def add(self, key: bytes, value: bytes) -> None:
        self.crc64xor ^= crc64.xz(key + value)
        self.total_kvs += 1
        self.total_bytes += len(key) + len(value)

    def result(self) -> Checksum:
        return Checksum(crc64xor=self.crc64xor, total_kvs=self.total_kvs, total_bytes=self.total_bytes)


class Counted(Protocol):
    """Anything carrying TiKV's three counters (backup.File, FileInfo)."""

    crc64xor: int
    total_kvs: int
    total_bytes: int


def total_of(counted: Iterable[Counted]) -> Checksum:
    """The checksum of the union of what each item counts (e.g. a range's backup files)."""
    total = Checksum()
    for item in counted:
        total = total.merge(Checksum(crc64xor=item.crc64xor, total_kvs=item.total_kvs, total_bytes=item.total_bytes))
    return total
