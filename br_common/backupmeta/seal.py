"""backupmeta's own integrity: a seal beside it (`backupmeta.seal`) with its sha256 and size and,
when the coordinator signs its tasks, the coordinator's signature of both. br-fleet writes the
seal just before backupmeta (backupmeta stays the commit marker) and every restore checks it
before using anything backupmeta lists: a rewritten, truncated or swapped backupmeta is refused.

A backup written by pingcap's BR has no seal; it is restored with a warning that its backupmeta
cannot be checked. A br-fleet backupmeta without its seal is refused.
"""
from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, ValidationError

from br_common.backupmeta.meta import MetaError
from br_common.fleet.signing import Signer

SEAL_VERSION = 1


class Seal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = SEAL_VERSION
    sha256: str  # hex, of the backupmeta object's bytes
    size: int
    signer: str = ""  # the coordinator key's fingerprint ("" = unsigned)
    sig: str = ""  # base64 signature of sealed_content(sha256, size)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def sealed_content(sha256: str, size: int) -> bytes:
    return json.dumps({"v": SEAL_VERSION, "backupmeta_sha256": sha256, "size": size}, sort_keys=True).encode()


def seal(backupmeta: bytes, signer: Signer | None) -> Seal:
    digest, size = hashlib.sha256(backupmeta).hexdigest(), len(backupmeta)
    if signer is None:
        return Seal(sha256=digest, size=size)
    return Seal(sha256=digest, size=size, signer=signer.fingerprint, sig=signer.sign(sealed_content(digest, size)))


def check(backupmeta: bytes, seal_bytes: bytes | None, ours: bool, signer: Signer | None, where: str,
          use: str = "restore from it") -> str:
    """MetaError when backupmeta fails its seal; else a warning for the operator ("" = none).
    `use`: what is refused ("restore from it", "build on it")."""
    if seal_bytes is None:
        if ours:
            raise MetaError(f"{where} has no seal (backupmeta.seal): br-fleet writes one with every backup, so this "
                            f"backupmeta was replaced or its seal deleted; refusing to {use}")
        return f"{where} was not written by br-fleet: it has no seal, so its integrity cannot be checked"
    try:
        found = Seal.model_validate_json(seal_bytes)
    except ValidationError:
        raise MetaError(f"{where}'s seal (backupmeta.seal) is damaged; refusing to {use}") from None
    if found.size != len(backupmeta) or found.sha256 != hashlib.sha256(backupmeta).hexdigest():
        raise MetaError(f"{where} does not match its seal (sha256 and size in backupmeta.seal): it was changed or "
                        f"truncated after the backup; refusing to {use}")
    return _check_signature(found, signer, where, use)


def _check_signature(found: Seal, signer: Signer | None, where: str, use: str) -> str:
    if not found.signer:
        return ""
    if signer is None or signer.fingerprint != found.signer:
        return (f"{where} is signed by coordinator key {found.signer}, not by this coordinator's key: its seal's "
                "checksum is checked, its signature is not")
    if not signer.verifies(sealed_content(found.sha256, found.size), found.sig):
        raise MetaError(f"{where}'s seal has a bad signature (forged or changed after signing); refusing to {use}")
    return ""
