"""Atomic JSON files for PD state: a crash (even SIGKILL) leaves either the old or the new file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class StateFileError(RuntimeError):
    """A state file exists but cannot be read back (corrupt or from another program)."""


def write_atomic(path: Path, model: BaseModel) -> None:
    """tmp + fsync + rename + fsync(dir): the rename is the commit point."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(model.model_dump_json().encode())
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read(path: Path, model_type: type[M]) -> M | None:
    """The saved model, or None when the file does not exist yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return model_type.model_validate_json(data)
    except ValidationError as exc:
        raise StateFileError(f"{path} is not a valid PD state file ({exc.error_count()} errors)") from None
