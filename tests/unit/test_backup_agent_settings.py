"""br-agent settings: flags > BR_AGENT_* env > TOML file; broker password added in memory."""
from __future__ import annotations

from pathlib import Path

import pytest

from br_agent.settings import load


def test_precedence_and_ignored_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('store = "10.0.0.1:20160"\npd = "10.0.0.9:2379"\nconcurrency = 3\n'
                      'allowed_destinations = ["s3://b/p"]\nmetrics_port = 9464\n')
    monkeypatch.setenv("BR_AGENT_PD", "10.0.0.8:2379")
    settings, ignored = load(str(config), {"concurrency": 5, "store": None})
    assert (settings.store, settings.pd, settings.concurrency) == ("10.0.0.1:20160", "10.0.0.8:2379", 5)
    assert settings.allowed_destinations == ["s3://b/p"] and ignored == ["metrics_port"]


def test_broker_password_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("p@ss/word\n")
    settings, _ = load(None, {"broker": "rediss://redis.internal:6380/0"})
    assert settings.broker_url("") == "rediss://redis.internal:6380/0"
    settings, _ = load(None, {"broker": "redis://redis.internal:6379/0"})
    settings.broker_password_file = str(secret)
    assert settings.broker_url("") == "redis://:p%40ss%2Fword@redis.internal:6379/0"
    monkeypatch.setenv("BR_AGENT_BROKER_PASSWORD", "envpw")
    settings, _ = load(None, {"broker": "redis://h:1/0"})
    assert settings.broker_url("") == "redis://:envpw@h:1/0" and "envpw" not in repr(settings)


def test_bad_toml_is_a_value_error(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("store = \n")
    with pytest.raises(ValueError, match="agent.toml"):
        load(str(config), {})
