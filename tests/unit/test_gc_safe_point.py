"""Reads at a ts are checked against PD's GC safe point by the client (TiKV answers them with what is
left), by one function: br_common.gc_safe_point, used by `br backup` and `br-devcluster checksum --ts`."""
from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest

from br_common.gc_safe_point import StaleReadError, require_after_safe_point
from br_common.tso import compose
from br_coordinator.backup import Backup
from br_coordinator.errors import CommandError
from br_devcluster import cli
from tests.doubles import FakePD

SAFE_POINT = compose(1_700_000_000_000, 0)


def test_a_ts_at_or_below_the_safe_point_is_refused_with_what_to_do() -> None:
    pd = FakePD(safe_point=SAFE_POINT)
    require_after_safe_point(pd, SAFE_POINT + 1, "read ts", "use a later one")
    for ts in (SAFE_POINT, SAFE_POINT - 1, 1):
        with pytest.raises(StaleReadError, match=rf"^read ts {ts} \(.*\) is not after the GC safe point "
                                                 rf"{SAFE_POINT} \(.*\): its versions may be gone; use a later one$"):
            require_after_safe_point(pd, ts, "read ts", "use a later one")


@pytest.mark.parametrize("resumed", [False, True])
def test_backup_refuses_a_ts_below_the_safe_point_before_anything_is_written(resumed: bool) -> None:
    fixed: list[int] = []
    backup = SimpleNamespace(pd=FakePD(safe_point=SAFE_POINT), job_id="j", _new_backup_ts=lambda: SAFE_POINT - 5,
                             jobs=SimpleNamespace(fix_job_ts=fixed.append))
    state = SimpleNamespace(job_ts=SAFE_POINT - 5 if resumed else 0)  # the job record: resumed or new
    with pytest.raises(CommandError, match="^backup ts .* is not after the GC safe point .*--backupts/--timeago") as err:
        Backup._backup_ts(backup, state)  # type: ignore[arg-type]
    assert ("or a new storage path" in str(err.value)) == resumed and fixed == []


def test_devcluster_checksum_at_a_ts_below_the_safe_point_is_one_line_and_reads_nothing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    reads: list[int] = []

    class Reader(contextlib.nullcontext):
        def checksum(self, start: bytes, end: bytes, ts: int) -> None:
            reads.append(ts)

    monkeypatch.setattr(cli, "_pd_client", lambda args: contextlib.nullcontext(FakePD(safe_point=SAFE_POINT)))
    monkeypatch.setattr(cli, "SnapshotKV", lambda pd: Reader())
    assert cli.main(["checksum", "--ts", str(SAFE_POINT - 1)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"br-devcluster checksum: --ts {SAFE_POINT - 1} (")
    assert "not after the GC safe point" in err and "use a later --ts" in err and reads == []


def test_the_demo_compares_the_source_at_its_backup_ts_only_while_it_is_readable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from br_devcluster import demo  # noqa: PLC0415

    reads: list[int] = []
    monkeypatch.setattr(demo, "PDClient", lambda address: contextlib.nullcontext(FakePD(safe_point=SAFE_POINT)))
    monkeypatch.setattr(demo, "SnapshotKV", lambda pd: SimpleNamespace(checksum=lambda ts: reads.append(ts)))
    with pytest.raises(demo.DemoError, match="^backup ts .* is not after the GC safe point"):
        demo._checksum("127.0.0.1:2379", SAFE_POINT, raw=True)
    demo._checksum("127.0.0.1:2379", SAFE_POINT + 1, raw=True)
    assert reads == [SAFE_POINT + 1]
