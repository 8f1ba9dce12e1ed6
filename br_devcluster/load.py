"""Deterministic data generator for `br-devcluster load`.

Keys are 16 bytes: 8 bytes spread over the whole key space (so PD's evenly spaced split keys
spread the data over all regions) followed by the big-endian index (so keys never collide).
Values depend only on (seed, index), so any run with the same flags writes the same data and
gives the same checksum: each is a slice of a pseudo-random pool (an XOF of the seed) at an
offset hashed from the index; random bytes compress like real payloads, and slicing is much
cheaper than hashing every value (the load is CPU-bound on 2 cores).
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from enum import Enum

from pydantic import BaseModel, ByteSize, Field, TypeAdapter, ValidationError, model_validator

from br_common.checksum import Checksum

KEY_SIZE = 16
_SPACE = 1 << 64
POOL_BYTES = 32 * 1024 * 1024  # larger than zstd's window: slices rarely repeat within reach
_GOLDEN = 0x9E3779B97F4A7C15  # multiplicative hash: spreads consecutive indexes over the pool
_BYTESIZE = TypeAdapter(ByteSize)
_SIZE_SHAPE = re.compile(r"^\s*\d+(\.\d+)?\s*[A-Za-z]*\s*$")


class Distribution(str, Enum):
    uniform = "uniform"
    sequential = "sequential"


def parse_size(text: str) -> int:
    """'1GB' (10**9), '1GiB' (2**30), '512MiB', '4096' -> bytes; ValueError with a clear message."""
    problem = f"invalid size {text!r}: use a number of bytes or a unit like 64KiB, 512MB, 1GB"
    if not _SIZE_SHAPE.match(text):  # ByteSize alone reads "1.5.2MB" as 1
        raise ValueError(problem)
    try:
        return int(_BYTESIZE.validate_python(text.strip()))
    except ValidationError:
        raise ValueError(problem) from None


class LoadSpec(BaseModel):
    """What to write; `keys` follows from `size` when only a size is given (size = keys*(key+value))."""

    keys: int = Field(ge=1)
    value_size: int = Field(ge=0, le=64 * 1024 * 1024)
    distribution: Distribution = Distribution.uniform
    seed: int = Field(default=0, ge=0, lt=1 << 63)

    @classmethod
    def from_size(cls, size: int, value_size: int, **kw: object) -> "LoadSpec":
        keys = size // (KEY_SIZE + value_size)
        if keys < 1:
            raise ValueError(f"size {size} B is smaller than one pair ({KEY_SIZE + value_size} B)")
        return cls(keys=keys, value_size=value_size, **kw)

    @model_validator(mode="after")
    def _keys_fit(self) -> "LoadSpec":
        if self.keys >= _SPACE:
            raise ValueError("too many keys")
        return self

    @property
    def total_bytes(self) -> int:
        return self.keys * (KEY_SIZE + self.value_size)


class KeyGen:
    """key(i) and value(i) of a LoadSpec; pure functions of (seed, i)."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self._seed = spec.seed.to_bytes(8, "big")
        self._step = _SPACE // spec.keys
        span = min(POOL_BYTES, max(spec.total_bytes, 65536))
        self._pool = hashlib.shake_128(b"br-devcluster-load" + self._seed).digest(span + spec.value_size)
        self._span = span

    def key(self, i: int) -> bytes:
        if self.spec.distribution is Distribution.sequential:
            prefix = i * self._step  # evenly spaced and ascending with i
        else:
            prefix = int.from_bytes(hashlib.blake2b(i.to_bytes(8, "big"), digest_size=8, key=self._seed).digest(),
                                    "big")
        return prefix.to_bytes(8, "big") + i.to_bytes(8, "big")

    def value(self, i: int) -> bytes:
        offset = ((i * _GOLDEN) & (_SPACE - 1)) % self._span
        return self._pool[offset:offset + self.spec.value_size]

    def pairs(self, start: int, stop: int) -> list[tuple[bytes, bytes]]:
        return [(self.key(i), self.value(i)) for i in range(start, stop)]

    def checksum(self) -> Checksum:
        """What a RawChecksum over the whole key space gives after a load into an empty cluster."""
        total = Checksum()
        for start, stop in chunks(self.spec.keys, 65536):
            total.add_pairs(self.pairs(start, stop))
        return total


def chunks(count: int, per_chunk: int) -> Iterator[tuple[int, int]]:
    for start in range(0, count, per_chunk):
        yield start, min(count, start + per_chunk)


def run_load(gen: KeyGen, put: Callable[[list[tuple[bytes, bytes]]], None], batch_bytes: int, writers: int,
             progress: Callable[[int], None] = lambda _n: None) -> None:
    """Write every pair with `writers` threads, each putting batches of about batch_bytes.

    Threads overlap key generation (GIL-bound) with the RPCs (which release the GIL); the first
    error stops the remaining batches and is raised.
    """
    per_batch = max(1, batch_bytes // (KEY_SIZE + gen.spec.value_size))
    failed = threading.Event()

    def one(span: tuple[int, int]) -> None:
        if failed.is_set():
            return
        try:
            pairs = gen.pairs(*span)
            put(pairs)
        except BaseException:
            failed.set()
            raise
        progress(sum(len(k) + len(v) for k, v in pairs))

    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="load") as pool:
        # bounded submission keeps memory at about 2 * writers batches
        window: list = []
        for span in chunks(gen.spec.keys, per_batch):
            if failed.is_set():
                break
            window.append(pool.submit(one, span))
            if len(window) >= 2 * writers:
                window.pop(0).result()
        for future in window:
            future.result()
