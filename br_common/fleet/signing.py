"""Signed task messages: an agent with trusted coordinator keys runs only tasks they signed.

Coordinator: `make_app(url, FleetSettings())` loads BR_SIGNING_KEY into a Signer, and
`app.send()` adds one message header,

    br_signature = {"v": 1, "signer": <key fingerprint>, "expires": <unix s>, "sig": <base64>}

signing the canonical JSON of (task name, task id, args, kwargs, expires).
Agent: with trusted_coordinator_keys, `make_app(..., verifier=Verifier.load(paths))`, and every
task (SignedTask is the app's task base class) checks that header before its body runs. An
unsigned, foreign-signed, tampered or expired message fails with TaskRefused: the agent logs
one line, the result (and Flower) says "refused: ...", and the message is acknowledged, so it is
neither run nor redelivered. Without trusted keys an agent runs every task (the devcluster's
default) and says so at startup.

Why not Celery's own message signing (task_serializer="auth"): it signs the body only, not the
task name, id or expiry carried in the headers (a signed body can be replayed under another
task name, forever); it needs a private key and certificate on every agent as well; and it
discards a refused message without a result (the coordinator waits until its timeout) while
logging the whole body with a traceback. The expiry bounds replays; within it the agent remembers
the task ids it received (fleet.replays: the id is the signed nonce) and refuses a second copy, and
a replay that reaches another agent still meets the checks every task makes (attempt not
superseded, and for a backup, backupmeta absent from the storage itself).

Keys: RSA (docs/DEPLOY.md's `openssl req -x509 -newkey rsa:3072`; PSS with SHA-256), Ed25519
or EC (ECDSA with SHA-256). Trusted keys are PEM files of certificates or public keys.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from celery import Task
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from br_common.fleet.replays import SeenTasks

log = logging.getLogger(__name__)

HEADER = "br_signature"
VERSION = 1
# A queued task waits minutes at most (the coordinator sends as agents free up, and resends
# lost work itself); a day leaves room for clock skew and a long-queued storage task.
SIGNATURE_TTL = 24 * 3600
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class SigningError(ValueError):
    """A signing key or trusted key file is unusable (one line)."""


class TaskRefused(Exception):
    """The agent would not run a task: its signature is missing, foreign, wrong or expired."""


def fingerprint(key: PublicKey) -> str:
    """sha256 of the public key (SubjectPublicKeyInfo DER), 32 hex digits: names a key in
    headers, logs and the agent registry."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:32]


def signed_content(name: str, task_id: str, args: Any, kwargs: Any, expires: int) -> bytes:
    """What is signed: canonical JSON, equal on both ends after the JSON round trip."""
    content = {"v": VERSION, "task": name, "id": task_id, "args": list(args), "kwargs": dict(kwargs or {}),
               "expires": expires}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


# --- coordinator ------------------------------------------------------------------------------
class Signer:
    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self.fingerprint = fingerprint(key.public_key())

    @classmethod
    def load(cls, key_path: str | Path, cert_path: str | Path | None = None) -> "Signer":
        """The coordinator's key (BR_SIGNING_KEY); its certificate (BR_SIGNING_CERT), if given,
        must hold the same public key: the agents trust that certificate."""
        key = _private_key(Path(key_path))
        signer = cls(key)
        if cert_path:
            certified = {fingerprint(k) for k in load_public_keys(Path(cert_path))}
            if signer.fingerprint not in certified:
                raise SigningError(f"signing certificate {cert_path} does not belong to the signing key {key_path}")
        return signer

    def header(self, name: str, task_id: str, args: Any, kwargs: Any = None, ttl: int = SIGNATURE_TTL,
               now: float | None = None) -> dict[str, Any]:
        expires = int(now if now is not None else time.time()) + ttl
        data = signed_content(name, task_id, args, kwargs, expires)
        return {"v": VERSION, "signer": self.fingerprint, "expires": expires,
                "sig": base64.b64encode(_sign(self._key, data)).decode()}

    def sign(self, data: bytes) -> str:
        """A base64 signature of `data` (e.g. a backupmeta's seal) by the coordinator's key."""
        return base64.b64encode(_sign(self._key, data)).decode()

    def verifies(self, data: bytes, sig: str) -> bool:
        """Whether `sig` is this key's signature of `data`."""
        try:
            raw = base64.b64decode(sig, validate=True)
        except (ValueError, binascii.Error):
            return False
        return _verifies(self._key.public_key(), raw, data)


def _private_key(path: Path) -> PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"signing key {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SigningError(f"signing key {path} is encrypted: br needs it unencrypted, in a file only the "
                           f"operators' group can read") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningError(f"signing key {path} is not a PEM private key") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey)):
        raise SigningError(f"signing key {path}: {type(key).__name__} is not supported (use RSA, Ed25519 or EC)")
    return key


def _sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, _PSS, hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    return key.sign(data)


# --- agent --------------------------------------------------------------------------------------
class Verifier:
    def __init__(self, keys: list[PublicKey], seen: SeenTasks | None = None) -> None:
        self._keys = {fingerprint(k): k for k in keys}
        self.seen = seen  # with it, a task id received before is refused as a replay

    @classmethod
    def load(cls, paths: list[str] | list[Path]) -> "Verifier":
        return cls([key for path in paths for key in load_public_keys(Path(path))])

    @property
    def fingerprints(self) -> list[str]:
        return sorted(self._keys)

    def check(self, name: str, task_id: str, args: Any, kwargs: Any, header: Any, now: float | None = None) -> str:
        """The signer's fingerprint, or TaskRefused saying why not."""
        if header is None:
            raise TaskRefused("refused: unsigned task (this agent runs only tasks signed by a trusted coordinator)")
        try:
            signer, expires, sig = header["signer"], int(header["expires"]), base64.b64decode(header["sig"],
                                                                                              validate=True)
            if header["v"] != VERSION:
                raise ValueError
        except (TypeError, KeyError, ValueError, binascii.Error):
            raise TaskRefused("refused: malformed signature header") from None
        key = self._keys.get(signer)
        if key is None:
            raise TaskRefused(f"refused: signed by an untrusted key {str(signer)[:32]!r}")
        if expires < (now if now is not None else time.time()):
            raise TaskRefused(f"refused: signature expired at {_iso(expires)}")
        if not _verifies(key, sig, signed_content(name, task_id, args, kwargs, expires)):
            raise TaskRefused("refused: bad signature (changed after signing, or forged)")
        if self.seen is not None and not self.seen.claim(task_id, expires):
            raise TaskRefused(f"refused: replayed task {task_id} (this agent received it before)")
        return signer


def _verifies(key: PublicKey, sig: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, data, _PSS, hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(sig, data)
    except InvalidSignature:
        return False
    return True


def load_public_keys(path: Path) -> list[PublicKey]:
    """The public keys of a PEM file of certificates (each must be valid now) or public keys."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"trusted key {path}: {exc.strerror or exc}") from None
    try:
        certs = x509.load_pem_x509_certificates(data) if b"-----BEGIN CERTIFICATE-----" in data else []
        keys = [_certified_key(cert, path) for cert in certs] if certs else [serialization.load_pem_public_key(data)]
    except (ValueError, UnsupportedAlgorithm) as exc:
        if isinstance(exc, SigningError):
            raise
        raise SigningError(f"trusted key {path} is neither a PEM certificate nor a PEM public key") from None
    for key in keys:
        if not isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
            raise SigningError(f"trusted key {path}: {type(key).__name__} is not supported (use RSA, Ed25519 or EC)")
    return keys


def _certified_key(cert: x509.Certificate, path: Path) -> PublicKey:
    now = datetime.now(timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise SigningError(f"trusted key {path}: the certificate is valid only from "
                           f"{cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}")
    return cert.public_key()  # type: ignore[return-value] - checked by the caller


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the task base class --------------------------------------------------------------------
class SignedTask(Task):
    """Base of every fleet task: checks the signature when the app has a verifier (an agent with
    trusted keys). A call from our own code in-process (called_directly) did not come off the
    wire and is not checked."""

    abstract = True
    throws = (TaskRefused,)  # an expected outcome: logged by Celery without a traceback

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        verifier: Verifier | None = getattr(self.app, "verifier", None)
        request = self.request
        if verifier is not None and not request.called_directly:
            header = getattr(request, HEADER, None)
            try:
                verifier.check(self.name, request.id, args, kwargs, header)
            except TaskRefused as exc:
                log.warning("task %s[%s] %s", self.name, request.id, exc)
                raise
        return super().__call__(*args, **kwargs)


def signing_problem(agents: list[Any], signer: Signer | None) -> str:
    """Why some live agent (registry AgentInfo) would refuse this coordinator's tasks ("" = none)."""
    for agent in agents:
        trusted = getattr(agent, "trusted_signers", [])
        if not trusted:
            continue
        if signer is None:
            return (f"br-agent {agent.instance} (store {agent.store_id}) runs only signed tasks: set BR_SIGNING_KEY "
                    f"to the coordinator's signing key")
        if signer.fingerprint not in trusted:
            return (f"br-agent {agent.instance} (store {agent.store_id}) does not trust this coordinator's key "
                    f"{signer.fingerprint}: add its certificate (BR_SIGNING_CERT) to the agent's "
                    f"trusted_coordinator_keys")
    return ""
