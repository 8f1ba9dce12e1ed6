"""sha256 of files as the storages move them: hashed on the way where the bytes pass anyway."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


class HashingWriter:
    """A write-only target that hashes what it writes (no seek: s3transfer then writes in order)."""

    def __init__(self, dst: BinaryIO, digest: "hashlib._Hash") -> None:
        self._dst = dst
        self._digest = digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._dst.write(data)


def sha256_of(path: Path) -> bytes:
    """A second read, for where the bytes could not be hashed on the way."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.digest()
