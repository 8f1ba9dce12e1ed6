"""Logging of `br`: --log-file receives the full log at --log-level; the console shows
warnings (info too when there is no progress bar). A filter scrubs known secrets (the URL's
keys) from every record, belt and braces on top of only ever logging redacted URLs.
"""
from __future__ import annotations

import logging
import sys

LOG_FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR,
          "fatal": logging.CRITICAL}


class SecretScrubber(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def setup(level: str, log_file: str | None, quiet_console: bool, secrets: list[str] | None = None) -> None:
    numeric = LEVELS.get(level, logging.INFO)
    scrubber = SecretScrubber(secrets or [])
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(max(numeric, logging.WARNING) if quiet_console else numeric)
    console.setFormatter(logging.Formatter(LOG_FORMAT))
    console.addFilter(scrubber)
    handlers: list[logging.Handler] = [console]
    if log_file:
        file_handler = logging.FileHandler(log_file)
        file_handler.setLevel(numeric)
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        file_handler.addFilter(scrubber)
        handlers.append(file_handler)
    logging.basicConfig(level=numeric, handlers=handlers, force=True)
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3", "celery", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
