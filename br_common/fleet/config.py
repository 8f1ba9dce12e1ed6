"""Fleet settings shared by `br` and `br-agent` (pydantic-settings: flags override env vars).

    from br_common.fleet.config import FleetSettings
    settings = FleetSettings()            # BR_BROKER, BR_HEARTBEAT_INTERVAL, ... from the environment
    settings = FleetSettings(broker=url)  # a --broker flag wins over the environment
"""
from __future__ import annotations

from pydantic import Field
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


def fleet_version() -> str:
    """The installed br-fleet version (BackupMeta.br_version, agent registry)."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("br-fleet")
    except PackageNotFoundError:
        return "0.0.0+unknown"
