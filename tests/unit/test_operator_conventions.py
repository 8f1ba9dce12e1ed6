"""Pure logic behind BR's conventions (issue 8); the same over real processes: test_operator_flow."""
from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from br_common.addresses import parse_host_port, parse_pd_addresses
from br_common.fleet.flower import task_kind, worker_label
from br_common.grpc_tls import TLSConfig
from br_common.redaction import set_redact, show_key
from br_coordinator import logging_setup
from br_coordinator.run import parse_args


def test_pd_lists_are_parsed_and_checked() -> None:
    assert parse_pd_addresses("a:2379, http://b:2379,a:2379,") == ["a:2379", "b:2379"]
    assert parse_host_port("https://10.0.0.1:02379/") == "10.0.0.1:2379"
    for bad in ("host:99999", "host", ":2379", "host:0", "", "a:1,b:99999", "a:1,:2", "a:1,b:-1", "a:65536"):
        with pytest.raises(ValueError):
            parse_pd_addresses(bad)


def test_global_flags_before_or_after_the_verb() -> None:
    before = parse_args(["--pd", "a:1,b:2", "--ratelimit", "8", "backup", "full", "-s", "local:///x"])
    after = parse_args(["backup", "full", "--pd", "a:1,b:2", "--ratelimit", "8", "-s", "local:///x"])
    for args in (before, after):
        assert (args.pd, args.ratelimit, args.storage, args.checksum, args.concurrency) == \
            ("a:1,b:2", 8, "local:///x", True, 4)
    assert parse_args(["--ratelimit", "8", "backup", "full", "--ratelimit", "9"]).ratelimit == 9  # the verb's wins
    assert parse_args(["fleet", "status"]).log_level == "warn"  # a verb's own default
    assert parse_args(["-L", "debug", "fleet", "status"]).log_level == "debug"


@pytest.mark.parametrize("argv", [["backup", "full", "--check=false"], ["backup", "full", "--stor", "x"],
                                  ["backup", "full", "--ratelimit", str(1 << 70)]])
def test_no_abbreviations_and_ranges_checked(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2


def test_flower_labels_are_bounded() -> None:
    assert task_kind("backup job=ab12 store=2 [4000..8000) 1 region") == "backup"
    assert task_kind("br.backup.range") == "br.backup.range"
    assert task_kind("") == task_kind("Bad Name") == task_kind("x" * 80) == "other"
    assert worker_label("gen12345@host-1") == "br@host-1"
    assert worker_label("br-agent-7-store1@host") == "br-agent-7-store1@host"


def test_tls_config_pairs() -> None:
    assert not TLSConfig().enabled and TLSConfig(ca="ca.pem").enabled
    for bad in ({"cert": "c.pem"}, {"ca": "ca.pem", "key": "k.pem"}, {"cert": "c", "key": "k"}):
        with pytest.raises(ValidationError):
            TLSConfig(**bad)


def test_keys_show_as_hex_or_redacted() -> None:
    assert show_key(b"\x00\xff") == "00ff" and show_key(b"") == '""'
    set_redact(True)
    try:
        assert show_key(b"secret") == "?"
    finally:
        set_redact(False)


def test_json_log_lines_and_zone() -> None:
    record = logging.LogRecord("br", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    entry = json.loads(logging_setup.JSONFormatter().format(record))
    assert entry["message"] == "hello world" and entry["level"] == "INFO" and entry["logger"] == "br"
    assert entry["time"][-6] in "+-" and entry["time"][-3] == ":"  # 2026/12/02 20:40:01.123 +00:00


@pytest.mark.parametrize("where, fix", [("missing/dir/b.log", "create the directory"), ("", "it is a directory")])
def test_an_unopenable_log_file_is_one_line_and_nothing_runs(tmp_path, where: str, fix: str,
                                                             capsys: pytest.CaptureFixture) -> None:
    from br_coordinator.cli import main  # noqa: PLC0415

    log_file = tmp_path / where
    assert main(["--log-file", str(log_file), "backup", "full", "-s", f"local://{tmp_path}/backup"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"br: error: cannot open the log file {log_file}") and fix in err
    assert not list(tmp_path.iterdir())  # nothing written: no backup dir, no log file
