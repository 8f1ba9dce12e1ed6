"""br-agent settings: flags > BR_AGENT_* env > TOML file; broker password added in memory;
--help generated from the model; --check-config (masked, sources, one-line errors, exit 0/1)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from br_agent.cli import build_parser, main
from br_agent.settings import AgentSettings, field_extra, load, shown_default


@pytest.fixture(autouse=True)
def _no_agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    for name in [n for n in os.environ if n.startswith("BR_AGENT_") or n == "BR_BROKER"]:
        monkeypatch.delenv(name)


def test_precedence_and_ignored_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('store = "10.0.0.1:20160"\npd = "10.0.0.9:2379"\nconcurrency = 3\n'
                      'allowed_destinations = ["s3://bkt/p"]\nmetrics_port = 9999\nratelimit_default_mib = 64\n')
    monkeypatch.setenv("BR_AGENT_PD", "10.0.0.8:2379")
    settings, ignored = load(str(config), {"concurrency": 5, "store": None})
    assert (settings.store, settings.pd, settings.concurrency) == ("10.0.0.1:20160", "10.0.0.8:2379", 5)
    assert settings.allowed_destinations == ["s3://bkt/p"] and settings.metrics_port == 9999
    assert ignored == ["ratelimit_default_mib"]


def test_unknown_key_is_an_error_naming_the_closest(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('allowed_destination = ["s3://bkt/p"]\n')  # the typo would otherwise allow anything
    with pytest.raises(ValueError, match="unknown setting 'allowed_destination'.*'allowed_destinations'"):
        load(str(config), {})
    config.write_text('broker_password = "x"\n')  # a secret has no file key
    with pytest.raises(ValueError, match="unknown setting 'broker_password'"):
        load(str(config), {})


def test_broker_password_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("p@ss/word\n")
    settings, _ = load(None, {"broker": "rediss://redis.internal:6380/0"})
    assert settings.broker_url("") == "rediss://redis.internal:6380/0?ssl_cert_reqs=required"  # as br resolves it
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


def test_help_shows_every_setting_with_its_meaning_default_and_env() -> None:
    text = " ".join(build_parser().format_help().split())  # argparse wraps lines
    for name, field in AgentSettings.model_fields.items():
        assert f"BR_AGENT_{name.upper()}" in text
        assert " ".join(field.description.split()[:6]) in text, name
        assert f"default {shown_default(name)}" in text, name
        if not field_extra(name).get("env_only"):
            assert (field_extra(name).get("flags") or [f"--{name.replace('_', '-')}"])[-1] in text
    assert "--broker-password " not in text and "--check-config" in text
    assert "default 8" in text and "default 9464" in text


def _check(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["--check-config", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_config_prints_the_effective_settings_masked_with_sources(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'staging_dir = "{tmp_path / "staging"}"\nconcurrency = 2\n'
                      'broker = "redis://redis.internal:6379/0"\n')
    monkeypatch.setenv("BR_AGENT_BROKER_PASSWORD", "s3cr3t-pw")
    monkeypatch.setenv("BR_AGENT_LOG_LEVEL", "warn")
    code, out, err = _check(["--config", str(config), "--allow-destination", "s3://bkt/a",
                             "--allow-destination", "s3://bkt/b?endpoint=http://127.0.0.1:9000"], capsys)
    assert code == 0, err
    assert "s3cr3t-pw" not in out + err
    lines = {line.split(" = ")[0]: line for line in out.splitlines() if " = " in line}
    assert lines["broker_password"] == 'broker_password = "***"  # env BR_AGENT_BROKER_PASSWORD'
    assert lines["concurrency"].endswith("= 2  # file") and lines["log_level"].startswith('log_level = "WARNING"')
    assert json.loads(lines["allowed_destinations"].split(" = ", 1)[1].split("  #")[0])[0] == "s3://bkt/a"
    assert lines["metrics_port"] == "metrics_port = 9464  # default" and "configuration OK" in err


def test_check_config_warns_about_an_empty_allowlist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _check(["--staging-dir", str(tmp_path)], capsys)
    assert code == 0 and "accepts tasks for any storage destination" in err


@pytest.mark.parametrize("argv, words", [
    (["--concurrency", "0"], "concurrency: Input should be greater than or equal to 1"),
    (["--allow-destination", "s3://bkt/p?access-key=AKIAEXAMPLE&secret-access-key=x"], "must not carry keys"),
    (["--allow-destination", "s3://bkt/p?region=eu"], "no parameter but endpoint"),
    (["--metrics-address", "localhost"], "metrics_address"),
    (["--metrics-port", "70000"], "metrics_port"),
    (["--pd", "10.0.0.1:2379,host:99999"], "pd: invalid PD address 'host:99999': port 99999 is outside 1-65535"),
    (["--pd", ":2379"], "pd: invalid PD address ':2379'"),
    (["--store", "10.0.0.2:0"], "store: invalid store address '10.0.0.2:0': port 0 is outside 1-65535"),
    (["--log-level", "loud"], "log_level: must be one of"),
    (["--broker", "http://redis:6379"], "broker: must be a redis:// or rediss:// URL"),
    (["--broker-password-file", "/nonexistent/pw"], "broker_password_file: cannot read"),
    (["--broker", "rediss://h:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/nonexistent/ca.pem"], "ssl_ca_certs"),
    (["--config", "/nonexistent/agent.toml"], "/nonexistent/agent.toml"),
    (["--broker", "rediss://h:6380/0?ssl_ca_cert=/x"], "unknown broker URL option 'ssl_ca_cert'"),
    (["--trusted-coordinator-key", "/nonexistent/c.crt"], "trusted_coordinator_keys: trusted key /nonexistent/c.crt"),
    (["--trusted-coordinator-key", __file__], "neither a PEM certificate nor a PEM public key"),
    (["--broker", "redis://:AKIAEXAMPLE@h:6379/0"], "--broker must not contain the Redis password"),
])
def test_check_config_names_the_problem_on_one_line_and_exits_1(
        argv: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _check(["--staging-dir", str(tmp_path), *argv], capsys)
    assert code == 1 and out == ""
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "AKIAEXAMPLE" not in err


def test_staging_dir_must_be_writable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = _check(["--staging-dir", str(blocker)], capsys)
    assert code == 1 and "is not a directory" in err


@pytest.mark.parametrize("case", ["missing", "ours", "a file", "another user's", "a key others can read",
                                  "a truncated key"])
def test_check_config_and_the_start_judge_the_staging_dir_alike(
        case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """--check-config passes exactly the staging dirs the start accepts (one check: br_agent.staging_dir):
    a directory of another user (it would hold the agent's sealing key), or a key in it that others can read
    or that is not whole, fails both."""
    import os  # noqa: PLC0415

    from br_agent import agent  # noqa: PLC0415

    staging = tmp_path / "staging" / "store1"
    if case != "missing":
        staging.parent.mkdir()
        staging.mkdir() if case != "a file" else staging.write_text("")
    if case == "another user's":
        monkeypatch.setattr(os, "geteuid", lambda: staging.stat().st_uid + 1)
    if "key" in case:
        key = staging / "seal.key"
        key.write_bytes(b"k" * (32 if case == "a key others can read" else 5))
        key.chmod(0o644 if case == "a key others can read" else 0o600)
    code, _, err = _check(["--staging-dir", str(staging)], capsys)
    try:
        agent._own_staging_dir(staging)
        started = ""
    except agent.AgentError as exc:
        started = str(exc)
    if case in ("missing", "ours"):
        assert code == 0 and started == "" and staging.is_dir()
    else:
        assert code == 1 and err == f"br-agent: error: {started}\n"
        words = {"another user's": "belongs to another user", "a file": "is not a directory",
                 "a key others can read": "seal.key is readable by others", "a truncated key": "expected 32 raw bytes"}
        assert words[case] in started
