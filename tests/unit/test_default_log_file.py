"""Two runs started in the same second each get their own default log file."""
from pathlib import Path

from br_coordinator import logging_setup


def test_runs_in_the_same_second_get_distinct_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(logging_setup.time, "strftime", lambda fmt: "2026-12-06T08.46.05+0000")
    first = logging_setup.default_log_file(tmp_path)
    second = logging_setup.default_log_file(tmp_path)
    third = logging_setup.default_log_file(tmp_path)
    assert first.name == "br.log.2026-12-06T08.46.05+0000"
    assert second.name == first.name + ".1" and third.name == first.name + ".2"
    assert all(p.exists() for p in (first, second, third))
