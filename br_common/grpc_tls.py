"""TLS for gRPC to PD and TiKV (clusters deployed with tiup's enable_tls), one model for every
client and for the devcluster's servers.

    tls = TLSConfig(ca="ca.pem", cert="client.pem", key="client-key.pem")   # all empty: plain gRPC
    channel = open_channel("10.0.1.11:2379", tls)
    server.add_secure_port(address, server_credentials(server_tls))        # devcluster

As TiKV's `security` section: `ca` alone verifies the server; `cert` with `key` adds the client's
certificate (mutual TLS, what TiKV and PD ask for when cert-allowed-cn or a CA is set on them).
"""
from __future__ import annotations

from pathlib import Path

import grpc
from pydantic import BaseModel, model_validator

from br_common.grpc_util import channel_options


class TLSError(ValueError):
    """A TLS file is missing or unreadable (one line)."""


class TLSConfig(BaseModel):
    ca: str = ""    # PEM CA bundle that signed the servers' certificates
    cert: str = ""  # PEM certificate of this side (client, or the devcluster's server)
    key: str = ""   # its PEM private key

    @model_validator(mode="after")
    def _pairs(self) -> "TLSConfig":
        if bool(self.cert) != bool(self.key):
            raise ValueError("TLS: --cert and --key go together")
        if self.cert and not self.ca:
            raise ValueError("TLS: --cert/--key need --ca (the CA that signed the cluster's certificates)")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.ca)

    def _read(self, path: str, what: str) -> bytes | None:
        if not path:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise TLSError(f"cannot read the TLS {what} {path}: {exc.strerror or exc}") from None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self._read(self.ca, "CA (--ca)"),
                                            private_key=self._read(self.key, "key (--key)"),
                                            certificate_chain=self._read(self.cert, "certificate (--cert)"))


PLAIN = TLSConfig()


def open_channel(address: str, tls: TLSConfig | None = None) -> grpc.Channel:
    """A channel to PD or TiKV with the project's message limits, TLS when configured."""
    if tls is not None and tls.enabled:
        return grpc.secure_channel(address, tls.channel_credentials(), options=channel_options())
    return grpc.insecure_channel(address, options=channel_options())


def server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    """The devcluster's servers: their own cert/key; with a CA, clients must present a certificate
    signed by it (mutual TLS, as TiKV with a CA configured)."""
    key, cert = tls._read(tls.key, "key"), tls._read(tls.cert, "certificate")
    if key is None or cert is None:
        raise TLSError("a TLS server needs a certificate and a key")
    ca = tls._read(tls.ca, "CA")
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)
