"""Task signatures: what verifies, what is refused and why (the agent side is tested live in
tests/integration/test_locked_channel.py)."""
from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from br_common.fleet.signing import Signer, SigningError, TaskRefused, Verifier, signing_problem

NAME, TASK_ID = "br.backup.range", "0123abcd"
ARGS = [{"job_id": "j1", "range": {"start": "00", "end": "ff"}, "backup_ts": 2 ** 63 + 5, "rate_limit": 0}]


def write_key(path: Path, key) -> Path:  # noqa: ANN001
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def write_cert(path: Path, key, days: int = 1, start_days: int = 0) -> Path:  # noqa: ANN001
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "br-fleet coordinator")])
    now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=start_days)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize("make", [lambda: rsa.generate_private_key(65537, 2048), ed25519.Ed25519PrivateKey.generate,
                                  lambda: ec.generate_private_key(ec.SECP256R1())], ids=["rsa", "ed25519", "ec"])
def test_signed_by_a_trusted_key_verifies_and_any_change_is_refused(tmp_path, make):
    key = make()
    signer = Signer.load(write_key(tmp_path / "k.pem", key), write_cert(tmp_path / "c.pem", key))
    verifier = Verifier.load([tmp_path / "c.pem"])
    header = signer.header(NAME, TASK_ID, ARGS)
    assert verifier.check(NAME, TASK_ID, ARGS, {}, header) == signer.fingerprint == verifier.fingerprints[0]
    tampered = [{**ARGS[0], "range": {"start": "00", "end": ""}}]
    for name, task_id, args in ((NAME, TASK_ID, tampered), ("br.storage.acquire_lock", TASK_ID, ARGS),
                                (NAME, "other-id", ARGS)):
        with pytest.raises(TaskRefused, match="bad signature"):
            verifier.check(name, task_id, args, {}, header)
    with pytest.raises(TaskRefused, match="bad signature"):
        verifier.check(NAME, TASK_ID, ARGS, {}, {**header, "expires": header["expires"] + 3600})


def test_unsigned_foreign_expired_and_malformed_are_refused(tmp_path):
    trusted = ed25519.Ed25519PrivateKey.generate()
    public = trusted.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "trusted.pub").write_bytes(public)
    verifier = Verifier.load([tmp_path / "trusted.pub"])
    with pytest.raises(TaskRefused, match="unsigned task"):
        verifier.check(NAME, TASK_ID, ARGS, {}, None)
    foreign = Signer(ed25519.Ed25519PrivateKey.generate()).header(NAME, TASK_ID, ARGS)
    with pytest.raises(TaskRefused, match="untrusted key"):
        verifier.check(NAME, TASK_ID, ARGS, {}, foreign)
    forged = {**foreign, "signer": verifier.fingerprints[0]}  # claims the trusted key's name
    with pytest.raises(TaskRefused, match="bad signature"):
        verifier.check(NAME, TASK_ID, ARGS, {}, forged)
    old = Signer(trusted).header(NAME, TASK_ID, ARGS, ttl=60, now=1_000_000)
    with pytest.raises(TaskRefused, match="expired at 1970-01-12"):
        verifier.check(NAME, TASK_ID, ARGS, {}, old)
    for bad in ("x", {"v": 1}, {**old, "sig": "!!"}, {**old, "v": 2}):
        with pytest.raises(TaskRefused, match="malformed"):
            verifier.check(NAME, TASK_ID, ARGS, {}, bad)


def test_key_file_errors_are_one_line(tmp_path):
    key = rsa.generate_private_key(65537, 2048)
    other = rsa.generate_private_key(65537, 2048)
    write_key(tmp_path / "k.pem", key)
    cases = [
        (lambda: Signer.load(tmp_path / "missing.pem"), "No such file"),
        (lambda: Signer.load(write_cert(tmp_path / "c.pem", key)), "not a PEM private key"),
        (lambda: Signer.load(tmp_path / "k.pem", write_cert(tmp_path / "o.pem", other)), "does not belong"),
        (lambda: Verifier.load([tmp_path / "k.pem"]), "neither a PEM certificate"),
        (lambda: Verifier.load([write_cert(tmp_path / "old.pem", key, days=1, start_days=-10)]), "valid only"),
    ]
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"pw"))
    (tmp_path / "enc.pem").write_bytes(encrypted)
    cases.append((lambda: Signer.load(tmp_path / "enc.pem"), "encrypted"))
    for call, message in cases:
        with pytest.raises(SigningError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


class _Agent:
    def __init__(self, trusted: list[str]) -> None:
        self.trusted_signers, self.instance, self.store_id = trusted, "h/1/boot", 1


def test_the_coordinator_knows_up_front_whether_agents_will_refuse_it():
    signer = Signer(ed25519.Ed25519PrivateKey.generate())
    assert signing_problem([_Agent([])], None) == ""
    assert "runs only signed tasks: set BR_SIGNING_KEY" in signing_problem([_Agent(["ab"])], None)
    assert "does not trust this coordinator's key" in signing_problem([_Agent(["ab"])], signer)
    assert signing_problem([_Agent([signer.fingerprint]), _Agent([])], signer) == ""
