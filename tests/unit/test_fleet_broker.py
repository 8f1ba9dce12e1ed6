"""Broker URLs: password from env/file (never printed), TLS options to Celery and redis-py."""
from __future__ import annotations

import ssl

import pytest

from br_common.fleet import redis_client
from br_common.fleet.app import make_app
from br_common.fleet.broker import BrokerError, BrokerURL, has_password, read_password_file, redact, resolve
from br_common.fleet.config import FleetSettings

SECRET = "s3cr/et@p:w"


def test_password_from_a_file_is_added_encoded_and_never_shown(tmp_path):
    (tmp_path / "pw").write_text(SECRET + "\n")
    broker = resolve("redis://10.0.0.10:6380/1", password_file=tmp_path / "pw")
    assert broker.password.get_secret_value() == SECRET
    assert BrokerURL.parse(broker.url()).password.get_secret_value() == SECRET  # round trip through quoting
    assert broker.redacted() == "redis://:***@10.0.0.10:6380/1"
    assert SECRET not in repr(broker) and "s3cr" not in broker.redacted()
    assert redact(f"cannot reach {broker.url()}: refused") == "cannot reach redis://:***@10.0.0.10:6380/1: refused"


def test_the_urls_own_password_wins_then_the_variable_then_the_file(tmp_path):
    (tmp_path / "pw").write_text("from-file")
    assert resolve("redis://:inurl@h:1/0", "env", tmp_path / "pw").password.get_secret_value() == "inurl"
    assert resolve("redis://h:1/0", "env", tmp_path / "pw").password.get_secret_value() == "env"
    assert resolve("redis://h:1/0", None, None).password is None


@pytest.mark.parametrize("content, message", [(None, "No such file"), ("", "one line"), ("a\nb", "one line")])
def test_bad_password_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "pw"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BrokerError, match=message) as info:
        read_password_file(path)
    assert "\n" not in str(info.value)


def test_rediss_verifies_by_default_and_passes_tls_files(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    broker = BrokerURL.parse(f"rediss://:pw@redis.internal:6380/0?ssl_ca_certs={ca}")
    options = broker.ssl_options()
    assert options == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_check_hostname": True, "ssl_ca_certs": str(ca)}
    assert broker.url() == "rediss://:pw@redis.internal:6380/0"  # TLS options go separately
    assert BrokerURL.parse(broker.full_url()) == broker
    none = BrokerURL.parse("rediss://h:6380/0?ssl_cert_reqs=CERT_NONE").ssl_options()
    assert none["ssl_cert_reqs"] == ssl.CERT_NONE and none["ssl_check_hostname"] is False


@pytest.mark.parametrize("url, message", [
    ("http://h:1/0", "rediss://"), ("redis://h:1/0?ssl_ca_certs=/x", "needs a rediss://"),
    ("rediss://h:1/0?ssl_cert_reqs=maybe", "required, optional or none"),
    ("rediss://h:1/0?ssl_ca_cert=/x", "unknown broker URL option"), ("redis://:pw@h:port/0", "invalid broker URL"),
])
def test_bad_urls_are_one_line_errors_without_the_password(url, message):
    with pytest.raises(BrokerError, match=message) as info:
        BrokerURL.parse(url)
    assert "pw" not in str(info.value)


def test_a_missing_tls_file_is_named(tmp_path):
    broker = BrokerURL.parse(f"rediss://h:1/0?ssl_ca_certs={tmp_path}/missing.pem")
    with pytest.raises(BrokerError, match="ssl_ca_certs .*missing.pem: No such file"):
        broker.ssl_options()


def test_celery_and_redis_clients_get_the_tls_options(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    url = f"rediss://:pw@127.0.0.1:6380/2?ssl_ca_certs={ca}"
    app = make_app(url, FleetSettings(broker=url, signing_key=""))
    assert app.conf.broker_url == "rediss://:pw@127.0.0.1:6380/2"
    assert app.conf.broker_use_ssl == app.conf.redis_backend_use_ssl
    assert app.conf.broker_use_ssl["ssl_ca_certs"] == str(ca)
    kwargs = redis_client(url).connection_pool.connection_kwargs
    assert kwargs["password"] == "pw" and kwargs["db"] == 2 and kwargs["ssl_ca_certs"] == str(ca)
    assert kwargs["ssl_cert_reqs"] == ssl.CERT_REQUIRED


def test_settings_resolve_the_password_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "pw").write_text("filepw")
    monkeypatch.setenv("BR_BROKER", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("BR_BROKER_PASSWORD_FILE", str(tmp_path / "pw"))
    monkeypatch.delenv("BR_BROKER_PASSWORD", raising=False)
    assert FleetSettings().resolved_broker() == "redis://:filepw@127.0.0.1:6379/0"
    monkeypatch.setenv("BR_BROKER_PASSWORD", "envpw")
    assert FleetSettings().resolved_broker() == "redis://:envpw@127.0.0.1:6379/0"
    assert has_password("redis://:x@h/0") and not has_password("redis://h/0")
