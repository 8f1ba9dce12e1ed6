"""Logging of `br`, as BR's: every job logs to a file (--log-file, or /tmp/br.log.<timestamp>
whose path is printed at start) that holds the arguments (secrets redacted), the version, every
line at --log-level, the final error and the summary; text or JSON lines (--log-format). The
console shows warnings (info too when there is no progress bar). A filter scrubs known secrets
(the URL's keys) from every record, belt and braces on top of only ever logging redacted URLs.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR,
          "fatal": logging.CRITICAL}
FILE_ONLY = "br_file_only"  # `extra={FILE_ONLY: True}`: for the log file, not the console (the summary)


def log_time(created: float) -> str:
    """BR's log timestamp: local time with milliseconds and the zone, e.g. 2026/12/02 20:40:01.123 +00:00."""
    moment = datetime.fromtimestamp(created).astimezone()
    return moment.strftime("%Y/%m/%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} " + \
        moment.strftime("%z")[:3] + ":" + moment.strftime("%z")[3:]


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"[{log_time(record.created)}] [{record.levelname}] [{record.name}] {record.getMessage()}"
        if record.exc_text or record.exc_info:
            text += "\n" + (record.exc_text or self.formatException(record.exc_info))
        return text


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": log_time(record.created), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_text or record.exc_info:
            entry["error"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class SecretScrubber(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: list[str]) -> None:
        self.secrets = sorted({*self.secrets, *(s for s in secrets if s)}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg, record.args = self.scrub(record.getMessage()), None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class _ConsoleOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, FILE_ONLY, False)


_scrubber = SecretScrubber([])


@dataclass
class LogFileNotice:
    """This run's log file, and whether the operator has been told where it is: a default file
    (/tmp/br.log.<ts>) is named at start on a terminal, else at the end (summary, error line), so
    that a failure stays one line on stderr."""

    path: str = ""
    told: bool = True  # --log-file: the operator named it

    def unannounced(self) -> str:
        return "" if self.told else self.path


_notice = LogFileNotice()


def default_log_file(directory: Path = Path("/tmp")) -> Path:
    """BR's default, /tmp/br.log.<timestamp>, claimed by an exclusive create: two runs started
    in the same second must not append to one file (the second gets a .1 suffix, and so on)."""
    base = directory / f"br.log.{time.strftime('%Y-%m-%dT%H.%M.%S%z')}"
    for attempt in range(1000):
        path = base if attempt == 0 else base.with_name(f"{base.name}.{attempt}")
        try:
            path.open("x").close()
            return path
        except FileExistsError:
            continue
    return path


def setup(level: str, log_file: str | Path | None, quiet_console: bool, secrets: list[str] | None = None,
          log_format: str = "text", chosen_by_operator: bool = True) -> None:
    """Raises OSError when the log file cannot be opened (the caller makes it one line)."""
    numeric = LEVELS.get(level, logging.INFO)
    _scrubber.add(secrets or [])
    formatter: logging.Formatter = JSONFormatter() if log_format == "json" else TextFormatter()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(max(numeric, logging.WARNING) if quiet_console else numeric)
    console.setFormatter(TextFormatter())
    console.addFilter(_scrubber)
    console.addFilter(_ConsoleOnly())
    handlers: list[logging.Handler] = [console]
    if log_file:
        file_handler = logging.FileHandler(log_file)
        file_handler.setLevel(numeric)
        file_handler.setFormatter(formatter)
        file_handler.addFilter(_scrubber)
        handlers.append(file_handler)
    _notice.path, _notice.told = str(log_file or ""), chosen_by_operator or not log_file
    logging.basicConfig(level=numeric, handlers=handlers, force=True)
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3", "celery", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


def open_error(path: str | Path, exc: OSError) -> str:
    """Why the log file cannot be opened and what to do, in one line (no traceback: issue 14)."""
    where = Path(path)
    if where.is_dir():
        fix = "it is a directory: name a file, e.g. --log-file backup.log"
    elif not where.parent.is_dir():
        fix = f"create the directory {where.parent} first, or choose another --log-file"
    else:
        fix = "make it writable by this user, or choose another --log-file"
    return f"cannot open the log file {path}: {exc.strerror or exc}; {fix}"


def job_started() -> None:
    """A job got past its input checks: on a terminal, say where its default log file is (as BR does)."""
    if _notice.unannounced() and sys.stderr.isatty():
        print(f"br: log file {_notice.path}", file=sys.stderr, flush=True)
        _notice.told = True


def unannounced_log_file() -> str:
    """The default log file's path while the operator has not been told it ("" otherwise)."""
    return _notice.unannounced()


def current_log_file() -> str:
    """The log file of this run ("" when there is none), for the summary."""
    return _notice.path


def add_secrets(secrets: list[str]) -> None:
    """Secrets learned after setup (the storage URL's keys) are scrubbed from then on."""
    _scrubber.add(secrets)


def file_only(logger: logging.Logger, message: str) -> None:
    """An INFO line for the log file only (the console already shows it, e.g. the summary on stdout)."""
    logger.info(message, extra={FILE_ONLY: True})
