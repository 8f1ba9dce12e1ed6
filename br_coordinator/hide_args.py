"""Keep storage keys out of the process's command line (`ps`, /proc/PID/cmdline are world-readable).

When -s/--storage (or --lastbackup, another storage URL) carries access-key/secret-access-key/
session-token, `br` re-executes itself
at once with the URL moved into an inherited pipe: the new command line says `-s @fd:N`, and
`read_storage_arg` reads the URL back from the pipe after parsing. Same PID, no temp file.

Until that re-exec (tens of milliseconds) the keys are on the command line; an operator who
wants them never to be there gives the URL indirectly: `-s @env:NAME` (an environment variable:
/proc/PID/environ is readable by the same user only) or `-s @file:PATH` (a file only the operator
reads).
"""
from __future__ import annotations

import os
import sys
from urllib.parse import unquote_plus

FD_PREFIX = "@fd:"
ENV_PREFIX = "@env:"
FILE_PREFIX = "@file:"
_SECRET_MARKERS = ("access-key", "access_key", "session-token", "session_token")
_FLAGS = ("-s", "--storage")
URL_FLAGS = ("--storage", "--lastbackup")  # every flag whose value is a storage URL (-s: --storage)


def _has_secret(value: str) -> bool:
    """Checked on the decoded text, as the URL parser reads it: `access%2Dkey` is access-key too."""
    lowered = unquote_plus(value).lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def storage_positions(argv: list[str], flag: str = "--storage") -> list[tuple[int, str]]:
    """(index, prefix) of every value of `flag` (one of URL_FLAGS): `-s V`/`--storage V` (prefix "")
    or `--storage=V` (and -sV for --storage)."""
    names = _FLAGS if flag == "--storage" else (flag,)
    out = []
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            out.append((i + 1, ""))
        elif arg.startswith(f"{flag}="):
            out.append((i, f"{flag}="))
        elif flag == "--storage" and arg.startswith("-s") and len(arg) > 2 and not arg.startswith("--"):
            out.append((i, "-s"))
    return out


def hide_storage_secrets(argv: list[str]) -> None:
    """Re-exec without the secret in argv when there is one; returns only when there is none."""
    positions = [(i, p) for flag in URL_FLAGS for i, p in storage_positions(argv, flag) if _has_secret(argv[i][len(p):])]
    if not positions:
        return
    new_argv = list(argv)
    for index, prefix in positions:
        read_end, write_end = os.pipe()
        os.write(write_end, argv[index][len(prefix):].encode())
        os.close(write_end)
        os.set_inheritable(read_end, True)
        new_argv[index] = f"{prefix}{FD_PREFIX}{read_end}"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "br_coordinator.cli", *new_argv])


def read_storage_arg(value: str | None, flag: str = "-s") -> str | None:
    """The real storage URL for a parsed -s (or `flag`) value: `@fd:N` (the re-exec's pipe, read
    and closed), `@env:NAME` or `@file:PATH`; any other value is the URL itself. ValueError (one
    line) when the indirection does not hold a URL."""
    if value is None:
        return None
    if value.startswith(FD_PREFIX):
        return _read_fd(value[len(FD_PREFIX):], flag)
    if value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX):]
        if not os.environ.get(name):
            raise ValueError(f"{flag} {value}: the environment variable {name} is not set")
        return os.environ[name].strip()
    if value.startswith(FILE_PREFIX):
        path = value[len(FILE_PREFIX):]
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise ValueError(f"{flag} {value}: cannot read {path}: {exc.strerror or exc}") from None
    return value


def _read_fd(number: str, flag: str) -> str:
    try:
        with os.fdopen(int(number), "rb") as pipe:
            return pipe.read().decode()
    except (ValueError, OSError):
        raise ValueError(f"{flag} @fd:N is internal to br: give the storage URL itself") from None
