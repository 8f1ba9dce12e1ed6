"""`br restore` flags and the checks made before any cluster or broker is contacted."""
from __future__ import annotations

import pytest

from br_common.fleet.jobs import RangeRecord
from br_common.backupmeta.kind import BackupKind
from br_common.fleet.messages import FileInfo, KeyRange
from br_common.fleet.restore_messages import FilePart
from br_coordinator import restore, run
from br_coordinator.errors import CommandError


def _parse(*argv: str):  # noqa: ANN202
    return run.parse_args(["restore", *argv])


def test_full_takes_brs_flags() -> None:
    args = _parse("full", "--pd", "10.0.0.1:2379", "-s", "s3://b/p", "--ratelimit", "128", "--concurrency", "8",
                  "--checksum=false", "-c", "--log-file", "r.log", "--log-level", "debug", "--broker", "redis://x/1",
                  "--s3.endpoint", "http://127.0.0.1:9000")
    assert (args.pd, args.storage, args.ratelimit, args.concurrency) == ("10.0.0.1:2379", "s3://b/p", 128, 8)
    assert args.checksum is False and args.send_credentials_to_tikv is True and args.allow_non_empty is False
    assert args.func.target is restore.run_full and args.s3_endpoint == "http://127.0.0.1:9000"
    assert _parse("full", "-s", "s3://b/p", "--allow-non-empty").allow_non_empty is True


@pytest.mark.parametrize("argv, words", [
    (["--start", "zz", "--format", "hex"], "not hex"),
    (["--start", "0b", "--end", "0a"], "--end must be greater than --start"),
    (["--cf", "write"], "--cf write"),
])
def test_raw_range_errors_are_one_line(argv: list[str], words: str) -> None:
    args = _parse("raw", "-s", "local:///tmp/x", *argv)
    with pytest.raises(CommandError, match=words) as err:
        args.func(args)
    assert "\n" not in str(err.value)


def test_storage_is_required_and_checked() -> None:
    with pytest.raises(CommandError, match="storage is required"):
        restore.run_full(_parse("full"))
    with pytest.raises(CommandError, match="invalid --storage"):
        restore.run_full(_parse("full", "-s", "s3://b/p?nonsense=1"))


def test_raw_key_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(restore, "run", lambda args, wanted, *_kind: seen.append(wanted) or 0)
    for fmt, start, end in (("hex", "6162", "7a"), ("raw", "ab", "z"), ("escape", "a\\x62", "z")):
        args = _parse("raw", "-s", "local:///tmp/x", "--format", fmt, "--start", start, "--end", end)
        assert args.func(args) == 0
    assert seen == [KeyRange(start=b"ab", end=b"z")] * 3


def test_restore_txn_takes_a_raw_user_key_range(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(restore, "run", lambda args, wanted, kind: seen.append((wanted, kind)) or 0)
    args = _parse("txn", "-s", "local:///tmp/x", "--format", "raw", "--start", "a", "--end", "b")
    assert args.func(args) == 0
    assert seen == [(KeyRange(start=b"a", end=b"b"), BackupKind.TXN)]


def test_a_backup_of_the_other_kind_is_refused_in_one_line() -> None:
    with pytest.raises(CommandError, match="holds a raw KV backup: `br restore txn` restores transactional KV"):
        restore._check_verb(BackupKind.TXN, BackupKind.RAW, "s3://b/p/backupmeta")
    with pytest.raises(CommandError, match="holds a transactional KV backup: `br restore raw`"):
        restore._check_verb(BackupKind.RAW, BackupKind.TXN, "s3://b/p/backupmeta")
    restore._check_verb(None, BackupKind.TXN, "s3://b/p/backupmeta")  # restore full takes either


def test_parts_already_restored_are_skipped() -> None:
    a = FileInfo(name="1/a.sst", start_key=b"a", end_key=b"m")
    b = FileInfo(name="2/b.sst", start_key=b"m", end_key=b"")
    parts = [FilePart(file=a, range=KeyRange(start=b"a", end=b"m")), FilePart(file=b, range=KeyRange(start=b"m"))]
    done = [RangeRecord(range=KeyRange(start=b"a", end=b"m"), files=[a])]
    assert restore._not_done(parts, done) == parts[1:]
