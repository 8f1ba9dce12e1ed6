"""Certificates for a devcluster with TLS (`br-devcluster up --tls`), made once per data dir with
cryptography: a CA, one certificate for PD and the stores (server and client use, for
127.0.0.1 and localhost, as tiup's enable_tls gives every component), and one client
certificate for br and the agents. Files under <data dir>/tls, keys 0600.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from br_common.grpc_tls import TLSConfig

VALID_DAYS = 3650


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "br-fleet devcluster"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, data: bytes, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _issue(ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, common_name: str,
           usages: list[x509.ObjectIdentifier]) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.ExtendedKeyUsage(usages), False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def make_certificates(tls_dir: Path) -> None:
    """Create the CA and certificates unless they exist (a restart keeps them)."""
    if (tls_dir / "ca.pem").exists():
        return
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_name = _name("br-fleet devcluster CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), True).sign(ca_key, hashes.SHA256()))
    node_cert, node_key = _issue(ca_key, ca_name, "devcluster",
                                 [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    client_cert, client_key = _issue(ca_key, ca_name, "br-fleet", [ExtendedKeyUsageOID.CLIENT_AUTH])
    _write(tls_dir / "node.pem", node_cert)
    _write(tls_dir / "node-key.pem", node_key, private=True)
    _write(tls_dir / "client.pem", client_cert)
    _write(tls_dir / "client-key.pem", client_key, private=True)
    _write(tls_dir / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))  # last: marks the set complete


def node_tls(tls_dir: Path) -> TLSConfig:
    """What PD and the stores serve (and use towards each other)."""
    return TLSConfig(ca=str(tls_dir / "ca.pem"), cert=str(tls_dir / "node.pem"), key=str(tls_dir / "node-key.pem"))


def client_tls(tls_dir: Path) -> TLSConfig:
    """What br, the agents and the devcluster's own tools present."""
    return TLSConfig(ca=str(tls_dir / "ca.pem"), cert=str(tls_dir / "client.pem"),
                     key=str(tls_dir / "client-key.pem"))


def tls_flags(tls: TLSConfig, prefix: str = "--") -> list[str]:
    """--ca/--cert/--key (br, br-agent) or --tls-ca/... (devcluster servers) for a TLSConfig."""
    if not tls.enabled:
        return []
    return [f"{prefix}ca", tls.ca, f"{prefix}cert", tls.cert, f"{prefix}key", tls.key]
