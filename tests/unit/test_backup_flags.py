"""`br` flag parsing: BR's names and defaults, pflag-style booleans, durations, keys, bad input."""
from __future__ import annotations

import argparse

import pytest

from br_common.backupmeta.kind import BackupKind
from br_common.fleet.messages import KeyRange
from br_common.tso import compose
from br_coordinator import flags
from br_coordinator.cli import main
from br_coordinator.job_options import BackupOptions
from br_coordinator.run import parse_args


def _parse(*argv: str) -> argparse.Namespace:
    return parse_args(["backup", "full", "-s", "local:///tmp/x", *argv])


def test_defaults_match_br() -> None:
    args = _parse()
    assert (args.pd, args.ratelimit, args.concurrency, args.compression, args.gcttl) == \
        ("127.0.0.1:2379", 0, 4, "zstd", 300)
    assert args.checksum is True and args.send_credentials_to_tikv is False


def test_booleans_behave_like_pflag() -> None:
    assert _parse("--checksum=false").checksum is False
    assert _parse("--checksum").checksum is True
    assert _parse("-c").send_credentials_to_tikv is True
    assert _parse("--send-credentials-to-tikv=true").send_credentials_to_tikv is True


def test_s3_flags_and_rate_limit() -> None:
    args = _parse("--s3.region", "eu-west-1", "--s3.storage-class", "STANDARD_IA", "--ratelimit", "128")
    assert flags.s3_flags(args).given() == {"region": "eu-west-1", "storage-class": "STANDARD_IA"}
    options = BackupOptions.from_args(args, KeyRange(), BackupKind.RAW)
    assert options.rate_limit == 128 * 1024 * 1024 and options.checksum and options.gcttl == 300
    assert options.checkpoint_gcttl == 4320 and options.compression == "zstd" and options.concurrency == 4


def test_durations_timestamps_and_keys() -> None:
    assert flags.parse_duration("1h30m") == 5400 and flags.parse_duration("1.5s") == 1.5
    assert flags.parse_backupts("400036290571534337") == 400036290571534337
    assert flags.parse_backupts("2018-05-11 01:42:23") >> 18 > 0
    assert flags.parse_backupts("2018-05-11T01:42:23+0000") == compose(1526002943000, 0)
    assert flags.parse_key("3030", "hex") == b"00"
    assert flags.parse_key("a\\x00b", "escaped") == b"a\x00b"
    assert flags.parse_key("a\\x00b", "raw") == b"a\\x00b"
    for bad in (lambda: flags.parse_duration("5 minutes"), lambda: flags.parse_backupts("yesterday"),
                lambda: flags.parse_key("zz", "hex"), lambda: flags.parse_bool("maybe")):
        with pytest.raises(argparse.ArgumentTypeError):
            bad()


@pytest.mark.parametrize("argv, message", [
    (["backup", "full"], "the storage is required"),
    (["backup", "full", "-s", "ftp://x/y"], "invalid --storage: unsupported storage scheme"),
    (["backup", "full", "-s", "s3://b/p?secret-access-key=abc"], "access-key"),
    (["backup", "full", "-s", "local:///tmp/x", "--backupts", "1", "--timeago", "1h"], "exclusive"),
    (["backup", "raw", "-s", "local:///tmp/x", "--start", "31", "--end", "30"], "--end must be greater"),
    (["backup", "raw", "-s", "local:///tmp/x", "--cf", "write"], "default cf"),
    (["backup", "raw", "-s", "local:///tmp/x", "--lastbackupts", "5"], "incremental backups are of txn KV"),
    (["backup", "txn", "-s", "local:///tmp/x", "--start", "31", "--end", "30"], "--end must be greater"),
])
def test_bad_input_is_one_line_and_exit_1(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert "abc" not in err


def test_bad_flag_is_a_usage_error_exit_2(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["backup", "full", "--compression", "gzip"])
    assert exit_info.value.code == 2


def test_help_reads_like_br(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["backup", "full", "--help"])
    text = capsys.readouterr().out
    for flag in ("--pd", "--storage", "--send-credentials-to-tikv", "--ratelimit", "--concurrency",
                 "--compression", "--compression-level", "--backupts", "--timeago", "--gcttl", "--checksum",
                 "--log-file", "--log-level", "--broker", "--s3.endpoint", "--s3.region"):
        assert flag in text, flag


def test_br_and_the_devcluster_parse_keys_alike() -> None:
    """One key parser (br_common.key_format): what one accepts the other accepts, byte for byte."""
    from br_devcluster import cli  # noqa: PLC0415

    for text, fmt in (("0x7480000a", "hex"), ("7480000a", "hex"), (r"t\x80\x00", "escaped"), (r"t\x80", "escape"),
                      ("abc", "raw")):
        assert flags.parse_key(text, fmt) == cli.parse_key(text, fmt)


@pytest.mark.parametrize("verb, flag, value, allowed", [
    ("backup", "--ratelimit", str(1 << 70), "allowed 0 to 1048576 MiB/s"),
    ("restore", "--ratelimit", "-1", "allowed 0 to 1048576 MiB/s"),
    ("backup", "--concurrency", str(1 << 32), "allowed 1 to 1024"),
    ("restore", "--concurrency", "0", "allowed 1 to 1024"),
    ("backup", "--gcttl", str(1 << 63), "allowed 1 to 31536000"),
    ("backup", "--checkpoint-gcttl", "0", "allowed 1 to 31536000"),
    ("backup", "--compression-level", str(1 << 31), "allowed -131072 to 22"),
    ("backup", "--backupts", str(1 << 64), "a TSO is 1 to 18446744073709551615"),
    ("backup", "--backupts", "9999-12-31 23:59:59", "a TSO is 1 to"),
    ("backup", "--backupts", "1960-01-01 00:00:00", "a datetime after 1970"),
    ("backup", "--timeago", "9" * 400 + "h", "allowed 0s to 87600h"),
    ("backup", "--concurrency", "four", "is not an integer"),
])
def test_numeric_flags_are_range_checked_before_anything_runs(verb: str, flag: str, value: str, allowed: str,
                                                              capsys: pytest.CaptureFixture) -> None:
    """Every numeric flag fits its protobuf field (uint64 rate_limit in bytes/s, uint32 concurrency, int32
    compression_level, uint64 TSO): a value that would overflow or wrap is refused by the parser, whose
    error line names the flag and its range."""
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "full", "-s", "local:///nonexistent/x", flag, value])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {flag}" in last and allowed in last and "Traceback" not in last, last


def test_numeric_flags_at_their_bounds_are_accepted() -> None:
    args = _parse("--ratelimit", str(flags.MAX_RATE_LIMIT_MIB), "--concurrency", str(flags.MAX_CONCURRENCY),
                  "--gcttl", str(flags.MAX_TTL_SECONDS), "--compression-level", "-131072", "--timeago", "87600h")
    options = BackupOptions.from_args(args, KeyRange(), BackupKind.RAW)
    assert options.rate_limit == 1 << 40 and options.rate_limit < 1 << 64 and options.concurrency < 1 << 32
    assert _parse("--backupts", str((1 << 64) - 1)).backupts == (1 << 64) - 1


def test_full_help_says_schemas_travel_in_the_txn_key_space(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["backup", "full", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "schemas travel as the meta keys inside the txn key space" in text and "--lastbackupts" in text


def test_lastbackupts_is_a_tso_and_reaches_the_options() -> None:
    args = _parse("--lastbackupts", "424242")
    assert BackupOptions.from_args(args, KeyRange(), BackupKind.TXN).last_backup_ts == 424242
    with pytest.raises(SystemExit):
        _parse("--lastbackupts", "2024-01-01 00:00:00")
