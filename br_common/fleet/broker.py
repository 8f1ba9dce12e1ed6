"""The broker URL as the fleet uses it: Redis AUTH password and TLS options, kept apart from
anything that gets printed.

    broker = BrokerURL.parse("rediss://10.0.0.10:6380/0?ssl_ca_certs=/etc/br-fleet/tls/redis-ca.pem")
    broker = broker.with_password(read_password_file("/etc/br-fleet/broker-password"))
    broker.url()           # for Celery and redis-py only: it holds the password
    broker.full_url()      # the same plus the TLS options: the string settings pass around
    broker.redacted()      # for messages and logs: rediss://:***@10.0.0.10:6380/0?...
    broker.ssl_options()   # Celery's broker_use_ssl / redis_backend_use_ssl, redis-py's ssl_* kwargs

Why the TLS options live in the URL's query (ssl_ca_certs, ssl_certfile, ssl_keyfile,
ssl_cert_reqs): it is the form Celery, redis-py and Flower's CELERY_BROKER_URL all accept, so one
URL configures `br`, the agents and Flower alike. Parsed here, they are handed to every client
explicitly, and rediss:// verifies the server by default (ssl_cert_reqs=required: the
certificate must chain to ssl_ca_certs, or the system CAs, and name the URL's host).

The password never comes from a command line (every local user can read argv): the
coordinator and the agents add it from the environment or a file (`with_password`).
"""
from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, SecretStr

SCHEMES = ("redis", "rediss")
CertReqs = Literal["required", "optional", "none"]
_CERT_REQS: dict[str, CertReqs] = {"required": "required", "cert_required": "required", "optional": "optional",
                                   "cert_optional": "optional", "none": "none", "cert_none": "none"}
_SSL_CONSTANTS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
_FILE_KEYS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s:]*:[^/@\s]*@", re.I)


class BrokerError(ValueError):
    """A broker URL, password file or TLS file is unusable (one line, no secret in it)."""


class BrokerTLS(BaseModel):
    model_config = ConfigDict(frozen=True)

    cert_reqs: CertReqs = "required"
    ca_file: str = ""  # empty: the system's CAs
    cert_file: str = ""  # client certificate (only if Redis asks for one: tls-auth-clients)
    key_file: str = ""


class BrokerURL(BaseModel):
    """A parsed redis:// or rediss:// URL; the password is a SecretStr (masked in repr)."""

    model_config = ConfigDict(frozen=True)

    scheme: Literal["redis", "rediss"]
    host: str
    port: int = 6379
    path: str = "/0"
    username: str = ""
    password: SecretStr | None = None
    query: str = ""  # anything but the ssl_* options, passed on as is
    tls: BrokerTLS | None = None

    @classmethod
    def parse(cls, url: str) -> "BrokerURL":
        try:
            parts = urlsplit(url.strip())
            port = parts.port or 6379
        except ValueError:
            raise BrokerError(f"invalid broker URL {redact(url)!r}") from None
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise BrokerError(f"invalid broker URL {redact(url)!r}: use redis://host:port/db or rediss://host:port/db")
        query = parse_qsl(parts.query, keep_blank_values=True)
        options = {k: v for k, v in query if k.startswith("ssl_")}
        rest = urlencode([(k, v) for k, v in query if not k.startswith("ssl_")])
        password = unquote(parts.password) if parts.password else None
        return cls(scheme=parts.scheme, host=parts.hostname, port=port, path=parts.path or "/0",
                   username=unquote(parts.username or ""), password=SecretStr(password) if password else None,
                   query=rest, tls=_tls(parts.scheme, options))

    def with_password(self, password: str | None) -> "BrokerURL":
        """This URL with `password` unless it carries one already (the URL's own wins)."""
        if not password or self.password is not None:
            return self
        return self.model_copy(update={"password": SecretStr(password)})

    def url(self) -> str:
        """The URL for Celery and redis-py (password included, TLS options left to ssl_options)."""
        return self._build(self._secret(), with_tls=False)

    def full_url(self) -> str:
        """Password and TLS options in one string: what settings hand to make_app/redis_client."""
        return self._build(self._secret(), with_tls=True)

    def redacted(self) -> str:
        """For messages: the password as ***, the TLS options shown (file paths, no secret)."""
        return self._build("***" if self.password else None, with_tls=True)

    def ssl_options(self) -> dict[str, Any]:
        """ssl_* keyword arguments (empty for redis://); TLS files are checked to be readable."""
        if self.tls is None:
            return {}
        tls = self.tls
        options: dict[str, Any] = {"ssl_cert_reqs": _SSL_CONSTANTS[tls.cert_reqs],
                                   "ssl_check_hostname": tls.cert_reqs == "required"}
        for key, value in (("ssl_ca_certs", tls.ca_file), ("ssl_certfile", tls.cert_file),
                           ("ssl_keyfile", tls.key_file)):
            if value:
                _check_readable(key, value)
                options[key] = value
        return options

    def _secret(self) -> str | None:
        return quote(self.password.get_secret_value(), safe="") if self.password else None

    def _build(self, password: str | None, with_tls: bool) -> str:
        userinfo = quote(self.username, safe="") + (f":{password}" if password is not None else "")
        netloc = (f"{userinfo}@" if userinfo else "") + _host(self.host) + f":{self.port}"
        query = self.query
        if with_tls and self.tls is not None:
            shown = [("ssl_cert_reqs", self.tls.cert_reqs), ("ssl_ca_certs", self.tls.ca_file),
                     ("ssl_certfile", self.tls.cert_file), ("ssl_keyfile", self.tls.key_file)]
            query = "&".join(filter(None, [query, urlencode([(k, v) for k, v in shown if v], safe="/")]))
        return urlunsplit((self.scheme, netloc, self.path, query, ""))


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _tls(scheme: str, options: dict[str, str]) -> BrokerTLS | None:
    known = {"ssl_cert_reqs", *_FILE_KEYS}
    unknown = sorted(set(options) - known)
    if unknown:
        raise BrokerError(f"unknown broker URL option {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if scheme == "redis":
        if options:
            raise BrokerError(f"{next(iter(options))} needs a rediss:// (TLS) broker URL")
        return None
    reqs = options.get("ssl_cert_reqs", "required").strip().lower()
    if reqs not in _CERT_REQS:
        raise BrokerError(f"ssl_cert_reqs={options['ssl_cert_reqs']!r}: use required, optional or none")
    return BrokerTLS(cert_reqs=_CERT_REQS[reqs], ca_file=options.get("ssl_ca_certs", ""),
                     cert_file=options.get("ssl_certfile", ""), key_file=options.get("ssl_keyfile", ""))


def _check_readable(key: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise BrokerError(f"broker {key} {path}: {exc.strerror or exc}") from None


def read_password_file(path: str | Path) -> str:
    """The Redis password from a one-line file (surrounding whitespace ignored)."""
    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BrokerError(f"broker password file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not text or "\n" in text:
        raise BrokerError(f"broker password file {path} must hold the password on one line")
    return text


def resolve(url: str, password: str | None = None, password_file: str | Path | None = None) -> BrokerURL:
    """The broker URL with its password: the URL's own, else `password`, else the file's."""
    broker = BrokerURL.parse(url)
    if broker.password is None and not password and password_file:
        password = read_password_file(password_file)
    return broker.with_password(password)


def has_password(url: str) -> bool:
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


def redact(text: str) -> str:
    """`text` with every URL's user:password@ replaced by :***@ (for any message or log line)."""
    return _USERINFO.sub(lambda m: f"{m.group(1)}:***@", text)


def broker_problem(url: str, exc: Exception) -> str:
    """One line for a failed connection: where (redacted) and what to check."""
    try:
        where = BrokerURL.parse(url).redacted()
    except BrokerError:
        where = redact(url)
    detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    import redis  # noqa: PLC0415 - keep flag parsing light (br --help)

    if isinstance(exc, redis.AuthenticationError):
        return (f"the broker at {where} refused the connection: {detail} (wrong or missing Redis password: "
                f"check the password file or variable)")
    if "CERTIFICATE_VERIFY_FAILED" in detail or "SSL" in detail:
        return f"TLS with the broker at {where} failed: {detail} (check ssl_ca_certs and the host name)"
    return f"cannot reach the broker at {where}: {detail}"
