"""Seal secrets (S3 keys for --send-credentials-to-tikv) to agents' public keys.

Each agent keeps an X25519 key pair; its private key is a 0600 file in its state dir and its
public key is published (e.g. with its worker registration). The coordinator seals the
plaintext once per recipient: a fresh ephemeral X25519 key, ECDH with the recipient's public
key, HKDF-SHA256 (bound to both public keys and the recipient id) -> an AES-256-GCM key.
A SealedBox is pydantic and JSON-safe, so it can ride in a Celery message; nothing in it
reveals the secret, and a wrong key or any changed byte fails with SealingError.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict

VERSION = 1
KEY_FILE = "seal.key"
_INFO = b"br-fleet sealed box v1"
_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
# raw bytes in Python, base64 strings in JSON
_BYTES_AS_BASE64 = ConfigDict(extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64")


class SealingError(Exception):
    """A box could not be sealed or opened (wrong key, tampering, bad key file); one line."""


class SealedPart(BaseModel):
    """The plaintext encrypted to one recipient."""
    model_config = _BYTES_AS_BASE64

    ephemeral_public: bytes
    nonce: bytes
    ciphertext: bytes  # AES-GCM output: encrypted bytes + 16-byte tag


class SealedBox(BaseModel):
    """model_dump(mode="json") / model_dump_json() for messages; model_validate(_json) back."""
    model_config = _BYTES_AS_BASE64

    version: int = VERSION
    parts: dict[str, SealedPart]  # recipient id -> its copy


def seal(plaintext: bytes, recipients: dict[str, bytes]) -> SealedBox:
    """Encrypt plaintext to every recipient (id -> raw 32-byte X25519 public key)."""
    if not recipients:
        raise SealingError("no recipients to seal to")
    return SealedBox(parts={rid: _seal_one(plaintext, rid, _public_key(rid, pub)) for rid, pub in recipients.items()})


def open_sealed(box: SealedBox, recipient_id: str, private_key: X25519PrivateKey) -> bytes:
    """The plaintext sealed to recipient_id; SealingError when it cannot be opened."""
    if box.version != VERSION:
        raise SealingError(f"sealed box version {box.version} is not supported (expected {VERSION})")
    part = box.parts.get(recipient_id)
    if part is None:
        raise SealingError(f"the sealed box has no copy for recipient {recipient_id!r}")
    try:
        ephemeral = X25519PublicKey.from_public_bytes(part.ephemeral_public)
        key = _derive(private_key.exchange(ephemeral), part.ephemeral_public, public_key_bytes(private_key),
                      recipient_id)
        return AESGCM(key).decrypt(part.nonce, part.ciphertext, recipient_id.encode())
    except (InvalidTag, ValueError):
        raise SealingError(f"cannot open the sealed box for {recipient_id!r}: wrong key or tampered data") from None


def public_key_bytes(private_key: X25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(_RAW, _RAW_PUB)


def generate_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def load_or_create_private_key(state_dir: Path) -> X25519PrivateKey:
    """The agent's key from state_dir/seal.key (created 0600 on first use; refused if others can read it)."""
    path = Path(state_dir) / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    problem = key_file_problem(state_dir)
    if problem:
        raise SealingError(problem)
    return X25519PrivateKey.from_private_bytes(path.read_bytes())


def key_file_problem(state_dir: Path) -> str:
    """"" when state_dir/seal.key is absent (it gets created) or usable, else why not (one line):
    the agent's start and `br-agent --check-config` judge it alike."""
    path = Path(state_dir) / KEY_FILE
    if not path.exists():
        return ""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return f"{path} is readable by others (mode {mode:o}): chmod 600 it"
    if not os.access(path, os.R_OK):
        return f"{path} is not readable by this user"
    if path.stat().st_size != 32:
        return f"{path} is not an X25519 private key (expected 32 raw bytes)"
    return ""


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = generate_private_key().private_bytes(_RAW, serialization.PrivateFormat.Raw,
                                               serialization.NoEncryption())
    try:  # O_EXCL: two processes starting at once must not overwrite each other's key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as out:
        out.write(raw)
        out.flush()
        os.fsync(out.fileno())


def _public_key(recipient_id: str, raw: bytes) -> X25519PublicKey:
    try:
        return X25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SealingError(f"public key of {recipient_id!r} is not a 32-byte X25519 key") from None


def _seal_one(plaintext: bytes, recipient_id: str, recipient: X25519PublicKey) -> SealedPart:
    ephemeral = X25519PrivateKey.generate()
    ephemeral_pub = public_key_bytes(ephemeral)
    key = _derive(ephemeral.exchange(recipient), ephemeral_pub, recipient.public_bytes(_RAW, _RAW_PUB), recipient_id)
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, recipient_id.encode())
    return SealedPart(ephemeral_public=ephemeral_pub, nonce=nonce, ciphertext=ciphertext)


def _derive(shared: bytes, ephemeral_pub: bytes, recipient_pub: bytes, recipient_id: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_pub + recipient_pub,
                info=_INFO + b"\x00" + recipient_id.encode())
    return hkdf.derive(shared)
