"""Fleet settings shared by `br` and `br-agent` (pydantic-settings: flags override env vars).

    from br_common.fleet.config import FleetSettings
    settings = FleetSettings()            # BR_BROKER, BR_HEARTBEAT_INTERVAL, ... from the environment
    settings = FleetSettings(broker=url)  # a --broker flag wins over the environment
    url = settings.resolved_broker()      # + the password of BR_BROKER_PASSWORD(_FILE), see broker.py

The Redis password comes from BR_BROKER (in a root-owned env file), BR_BROKER_PASSWORD or the
file BR_BROKER_PASSWORD_FILE, never from a command line. BR_SIGNING_KEY (with BR_SIGNING_CERT)
makes `br` sign every task (br_common.fleet.signing).
"""
from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


class FleetSettings(BaseSettings):
    """Every knob the fleet plumbing reads; env vars are BR_<NAME> (e.g. BR_BROKER)."""

    model_config = SettingsConfigDict(env_prefix="BR_", extra="ignore")

    broker: str = Field(DEFAULT_BROKER, description="Redis URL: Celery broker, result backend and job state")
    heartbeat_interval: float = Field(3.0, gt=0, description="seconds between an agent's registry refreshes")
    heartbeat_ttl: float = Field(15.0, gt=0, description="an agent missing this long is considered gone")
    # kombu re-queues the unacked messages of a dead worker only after this; the coordinator
    # resends lost work itself long before (see br_coordinator.follower), so keep it generous:
    # a shorter timeout than the longest task would run that task several times at once.
    visibility_timeout: int = Field(3600, gt=0)
    job_ttl_days: int = Field(30, gt=0, description="how long finished job records stay in Redis")
    broker_password: SecretStr | None = Field(None, description="Redis password when BR_BROKER has none")
    broker_password_file: str = Field("", description="file holding the Redis password (one line)")
    signing_key: str = Field("", description="PEM private key `br` signs tasks with; empty: unsigned")
    signing_cert: str = Field("", description="its certificate (what agents trust); checked to match the key")

    def resolved_broker(self) -> str:
        """The broker URL with the password added (BrokerError, one line, if unusable)."""
        from br_common.fleet.broker import resolve  # noqa: PLC0415 - keep this module light

        password = self.broker_password.get_secret_value() if self.broker_password else None
        return resolve(self.broker, password, self.broker_password_file or None).full_url()
