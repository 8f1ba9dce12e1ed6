"""br-agent settings: command-line flags > BR_AGENT_* environment > --config TOML file > defaults
(the file format of deploy/config/agent.toml.example).

Each field's description, default and flag live here and nowhere else: `br-agent --help`
(br_agent.cli) and `--check-config` are generated from this model, so they cannot drift from
what the agent does. The broker password never goes in the URL on disk:
BR_AGENT_BROKER_PASSWORD or broker_password_file is added to the URL in memory only. A key in
the file that this model does not know is an error (a typo in allowed_destinations must not
silently allow everything); keys another br-agent version implements (NOT_IMPLEMENTED) are
reported at startup, not silently taken as working.
"""
from __future__ import annotations

import difflib
import ipaddress
import os
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from br_common.addresses import parse_host_port, parse_pd_addresses
from br_common.fleet.broker import BrokerURL, resolve
from br_common.fleet.config import DEFAULT_BROKER
from br_common.fleet.destinations import parse_entry

if TYPE_CHECKING:
    from br_common.grpc_tls import TLSConfig

NOT_IMPLEMENTED = ("ratelimit_default_mib",)
ENV_PREFIX = "BR_AGENT_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def setting(default: Any, description: str, *, flags: tuple[str, ...] | None = None, metavar: str | None = None,
            shown: str | None = None, env_only: bool = False, **constraints: Any) -> Any:
    """A field plus what the CLI needs: its flags (default --<name>), metavar, the default as
    shown to people when the value itself says nothing (None, ""), and env_only for secrets
    (a flag would put them in argv, which every local user can read)."""
    extra = {"flags": list(flags) if flags else None, "metavar": metavar, "shown": shown, "env_only": env_only}
    extra = {k: v for k, v in extra.items() if v not in (None, False)}
    if isinstance(default, list):
        return Field(default_factory=list, description=description, json_schema_extra=extra, **constraints)
    return Field(default, description=description, json_schema_extra=extra, **constraints)


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")
    toml_file: ClassVar[Path | None] = None

    store: str = setting("127.0.0.1:20160", "the TiKV store this agent serves: its gRPC address exactly as "
                         "registered in PD; the agent consumes br.<cluster id>.store.<its id> and "
                         "br.<cluster id>.storage (both ids from PD)",
                         metavar="HOST:PORT")
    store_wait: float = setting(60.0, "seconds to wait at startup for the store to appear in PD", ge=0,
                                metavar="SECONDS")
    pd: str = setting("127.0.0.1:2379", "PD endpoints, comma-separated; the first that answers is used",
                      flags=("-u", "--pd"), metavar="HOST:PORT[,...]")
    broker: str = setting("", "Redis URL of the fleet (Celery broker, results, job state), redis:// or rediss:// "
                          "(TLS); never with the password in it", metavar="URL",
                          shown=f"$BR_BROKER, else {DEFAULT_BROKER}")
    broker_password: SecretStr | None = setting(None, "the Redis password; wins over broker_password_file; "
                                                "never logged", env_only=True, shown="unset")
    broker_password_file: str = setting("", "file holding the Redis password (one line), read when "
                                        "BR_AGENT_BROKER_PASSWORD is unset; empty = no password",
                                        metavar="FILE", shown='"" (none)')
    staging_dir: Path | None = setting(None, "local directory where SST files wait on their way to or from "
                                       "S3, shared with TiKV's user; also holds the agent's sealing key",
                                       metavar="DIR", shown="$TMPDIR/br-agent-<store host>-<store port>")
    store_import_dir: Path | None = setting(
        None, "TiKV's import directory on this host (<TiKV data-dir>/import): the agent removes from it the SSTs "
              "that a failed or interrupted restore downloaded but never ingested (TiKV itself drops only those "
              "whose region changed since); unset = leave them to TiKV", metavar="DIR", shown="unset")
    concurrency: int = setting(8, "tasks this agent runs at once (threads of the Celery pool)", ge=1, le=256,
                               flags=("-c", "--concurrency"), metavar="N")
    hostname: str = setting("", "the Celery worker name (Flower, celery inspect); Celery's %h (host), %n and %d "
                            "expand; it should name cluster and store so that two clusters' agents on one host "
                            "stay apart", flags=("-n", "--hostname"), metavar="NAME",
                            shown="br-agent-<cluster id>-store<store id>@%h")
    ca: str = setting("", "CA certificate (PEM) of the cluster's TLS (tiup's enable_tls): the agent then talks "
                      "TLS to PD and to its store; empty = plain gRPC", metavar="FILE", shown='"" (plain gRPC)')
    cert: str = setting("", "this agent's TLS certificate (PEM), for clusters that require client certificates",
                        metavar="FILE", shown='"" (none)')
    key: str = setting("", "the private key (PEM) of cert", metavar="FILE", shown='"" (none)')
    allowed_destinations: list[str] = setting(
        [], "storage destinations (s3://bucket/prefix[?endpoint=URL] or local:///path) this agent may write to "
            "or read from; a prefix covers itself and what is below it on a '/' boundary; an entry without "
            "endpoint means AWS S3 only; any other task is refused and says so; empty = any destination "
            "(with a warning at startup)", flags=("--allow-destination",), metavar="URL", shown="[] (any)")
    log_level: str = setting("INFO", "log verbosity: DEBUG, INFO, WARNING or ERROR (any case)",
                             flags=("-l", "--loglevel", "--log-level"), metavar="LEVEL")
    log_file: str = setting("", "also write the log to this file; empty = standard error only (the journal "
                            "under systemd)", metavar="FILE", shown='"" (stderr)')
    metrics_port: int = setting(9464, "port of the agent's Prometheus endpoint (http://ADDRESS:PORT/metrics: bytes "
                                "moved, task durations, retries, throttling); 0 = no endpoint", ge=0, le=65535,
                                metavar="PORT")
    metrics_address: str = setting("127.0.0.1", "address the Prometheus endpoint listens on", metavar="IP")
    trusted_coordinator_keys: list[str] = setting(
        [], "PEM files (certificates or public keys: RSA, Ed25519 or EC) of the coordinators whose signed tasks "
            "this agent runs; an unsigned, tampered, expired or foreign-signed task is then refused and logged; "
            "empty = signing off, every task is run (with a warning at startup)",
        flags=("--trusted-coordinator-key",), metavar="FILE", shown="[] (signing off)")

    @field_validator("store")
    @classmethod
    def _check_store(cls, address: str) -> str:
        return parse_host_port(address, "store address")  # ValueError (host, port 1-65535): pydantic names the field

    @field_validator("pd")
    @classmethod
    def _check_pd(cls, addresses: str) -> str:
        return ",".join(parse_pd_addresses(addresses))  # every entry, as br checks its --pd

    @field_validator("allowed_destinations")
    @classmethod
    def _check_destinations(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            parse_entry(entry)  # ValueError: pydantic names the field
        return entries

    @field_validator("trusted_coordinator_keys")
    @classmethod
    def _check_trusted_keys(cls, paths: list[str]) -> list[str]:
        from br_common.fleet.signing import load_public_keys  # noqa: PLC0415 - Celery: not for --help

        for path in paths:
            load_public_keys(Path(path))  # SigningError (a ValueError, one line): pydantic names the field
        return paths

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, level: str) -> str:
        upper = level.strip().upper()
        upper = "WARNING" if upper == "WARN" else upper
        if upper not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return upper

    @field_validator("metrics_address")
    @classmethod
    def _check_address(cls, address: str) -> str:
        ipaddress.ip_address(address)  # ValueError names the bad value; an address is no secret
        return address

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, url: str) -> str:
        if url and urlsplit(url).scheme not in ("redis", "rediss"):
            raise ValueError("must be a redis:// or rediss:// URL")
        if url:
            BrokerURL.parse(url)  # BrokerError names a bad port or TLS option, never the password
        return url

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if cls.toml_file is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file),)
        return sources

    def broker_url(self, fallback: str) -> str:
        """The broker URL with its password, resolved exactly as br resolves its own
        (br_common.fleet.broker.resolve: the URL's own, else broker_password, else the file's)."""
        password = self.broker_password.get_secret_value() if self.broker_password is not None else None
        return resolve(self.broker or fallback or DEFAULT_BROKER, password, self.broker_password_file or None).full_url()

    @property
    def tls(self) -> TLSConfig:
        """To PD and the store (clusters with enable_tls)."""
        from br_common.grpc_tls import TLSConfig  # noqa: PLC0415 - gRPC: not for --help

        return TLSConfig(ca=self.ca, cert=self.cert, key=self.key)

    def resolved_staging_dir(self) -> Path:
        if self.staging_dir is not None:
            return self.staging_dir
        return Path(tempfile.gettempdir()) / f"br-agent-{self.store.replace(':', '-')}"


def load(config_file: str | None, overrides: dict[str, Any]) -> tuple[AgentSettings, list[str]]:
    """Settings plus the names of file keys this version ignores (for a startup warning).

    ValueError (one line) for an unreadable file, bad TOML or an unknown key; pydantic's
    ValidationError for a bad value."""
    ignored: list[str] = []
    AgentSettings.toml_file = None
    if config_file:
        data = read_toml(Path(config_file))
        ignored = [k for k in data if k in NOT_IMPLEMENTED and k not in AgentSettings.model_fields]
        _check_keys(Path(config_file), data)
        AgentSettings.toml_file = Path(config_file)
    return AgentSettings(**{k: v for k, v in overrides.items() if v is not None}), ignored


def read_toml(path: Path) -> dict[str, Any]:
    with open(path, "rb") as handle:  # OSError: the caller prints it as one line
        try:
            return tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _check_keys(path: Path, data: dict[str, Any]) -> None:
    known = [k for k, f in AgentSettings.model_fields.items() if not _extra(f).get("env_only")]
    for key in data:
        if key in known or key in NOT_IMPLEMENTED:
            continue
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{path}: unknown setting {key!r}{hint}")


def sources(config_file: str | None, overrides: dict[str, Any]) -> dict[str, str]:
    """Where each effective value came from: flag, env, file or default (for --check-config)."""
    data = read_toml(Path(config_file)) if config_file else {}
    out = {}
    for name in AgentSettings.model_fields:
        if overrides.get(name) is not None:
            out[name] = "flag"
        elif f"{ENV_PREFIX}{name.upper()}" in os.environ:
            out[name] = f"env {ENV_PREFIX}{name.upper()}"
        elif name in data:
            out[name] = "file"
        else:
            out[name] = "default"
    return out


def _extra(field: Any) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def field_extra(name: str) -> dict[str, Any]:
    """The CLI metadata of one setting (flags, metavar, shown, env_only)."""
    return _extra(AgentSettings.model_fields[name])


def shown_default(name: str) -> str:
    """The default as people read it (help, --check-config, docs/DEPLOY.md's table)."""
    field = AgentSettings.model_fields[name]
    extra = _extra(field)
    if "shown" in extra:
        return str(extra["shown"])
    default = field.get_default(call_default_factory=True)
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)
