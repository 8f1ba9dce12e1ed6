"""br-agent settings: command-line flags > BR_AGENT_* environment > --config TOML file > defaults
(the file format of deploy/config/agent.toml.example).

The broker password never goes in the URL on disk: BR_AGENT_BROKER_PASSWORD or
broker_password_file is added to the URL in memory only. Keys this version does not implement
(metrics_*, trusted_coordinator_keys, ratelimit_default_mib) are reported at startup, not
silently taken as working.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from br_common.fleet.config import DEFAULT_BROKER

NOT_IMPLEMENTED = ("metrics_port", "metrics_address", "trusted_coordinator_keys", "ratelimit_default_mib")


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BR_AGENT_", extra="ignore")
    toml_file: ClassVar[Path | None] = None

    store: str = "127.0.0.1:20160"
    pd: str = "127.0.0.1:2379"  # several: comma-separated, the first that answers is used
    broker: str = ""  # empty: BR_BROKER, else redis://127.0.0.1:6379/0
    broker_password: SecretStr | None = None
    broker_password_file: str = ""
    staging_dir: Path | None = None
    concurrency: int = Field(8, ge=1, le=256)
    allowed_destinations: list[str] = Field(default_factory=list)
    store_wait: float = Field(60.0, ge=0)
    log_level: str = "INFO"
    log_file: str = ""

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
        url = self.broker or fallback or DEFAULT_BROKER
        password = self._password()
        if not password:
            return url
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f":{quote(password, safe='')}@{host}"))

    def _password(self) -> str:
        if self.broker_password is not None:
            return self.broker_password.get_secret_value()
        if self.broker_password_file:
            return Path(self.broker_password_file).read_text().strip()
        return ""


def load(config_file: str | None, overrides: dict[str, Any]) -> tuple[AgentSettings, list[str]]:
    """Settings plus the names of file keys this version ignores (for a startup warning)."""
    ignored: list[str] = []
    AgentSettings.toml_file = None
    if config_file:
        path = Path(config_file)
        with open(path, "rb") as handle:  # OSError: the caller prints it as one line
            try:
                data = tomllib.load(handle)
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"{path}: {exc}") from None
        ignored = [k for k in data if k in NOT_IMPLEMENTED or k not in AgentSettings.model_fields]
        AgentSettings.toml_file = path
    return AgentSettings(**{k: v for k, v in overrides.items() if v is not None}), ignored
