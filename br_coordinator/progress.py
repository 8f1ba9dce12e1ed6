"""Operator-facing progress: a rich bar on a terminal (units done, bytes, rate, ETA), plain lines
otherwise (one every `interval` seconds, for logs and CI), and a closing summary. The unit is
what the job counts: backup's key ranges, restore's files.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, \
    TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

log = logging.getLogger("br.summary")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


class _BytesColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        nbytes = task.fields.get("nbytes", 0)
        elapsed = task.elapsed or 0.0
        rate = nbytes / elapsed if elapsed > 0 else 0.0
        return Text(f"{human_bytes(nbytes)}  {human_bytes(rate)}/s", style="progress.data.speed")


class JobProgress:
    """update(done, total, nbytes) as often as you like (done/total in `unit`s); close() at the end."""

    def __init__(self, title: str, stream: TextIO | None = None, tty: bool | None = None,
                 interval: float = 10.0, unit: str = "ranges") -> None:
        self.title = title
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self.started = time.monotonic()
        self._last_line = 0.0
        self._state = (0, 0, 0)
        self.console = Console(file=self.stream, force_terminal=self.tty if tty is not None else None)
        self._bar: Progress | None = None
        if self.tty:
            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn(unit), _BytesColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), console=self.console, transient=False)
            self._task = self._bar.add_task(title, total=None, nbytes=0)
            self._bar.start()

    def update(self, done: int, total: int, nbytes: int) -> None:
        self._state = (done, total, nbytes)
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=max(total, done) or None, nbytes=nbytes)
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self._line()

    def _line(self) -> None:
        done, total, nbytes = self._state
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = nbytes / elapsed
        eta = ""
        if 0 < done < total:
            eta = f", ETA {int(elapsed * (total - done) / done)}s"
        print(f"[{self.title}] {done}/{total} {self.unit}, {human_bytes(nbytes)}, {human_bytes(rate)}/s{eta}",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self._state != (0, 0, 0):
            self._line()


def print_summary(title: str, rows: list[tuple[str, str]]) -> None:
    """The closing summary, one `key: value` per line (stdout: scripts can parse it), and the same
    lines in the log file."""
    from br_coordinator.logging_setup import current_log_file, file_only  # noqa: PLC0415

    log_file = current_log_file()
    lines = [title, *(f"  {key}: {value}" for key, value in [*rows, *([("log file", log_file)] if log_file else [])])]
    print("\n".join(lines))
    sys.stdout.flush()
    for line in lines:
        file_only(log, f"summary: {line.strip()}")
