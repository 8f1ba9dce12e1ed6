"""The command line of a devcluster process (PD, store): argparse into a pydantic model, and
any bad input as one line `<prog>: error: ...` with exit 2 (the launcher shows it as is).

    parser = OneLineParser("br_devcluster.store", prog="python -m br_devcluster.store")
    parser.add_argument("--data-dir", required=True)
    config = validated(parser, StoreConfig, argv)     # SystemExit(2) with one line when bad
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class OneLineParser(argparse.ArgumentParser):
    def __init__(self, name: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.name = name

    def error(self, message: str) -> NoReturn:
        fail(self.name, message)


def fail(name: str, message: str) -> NoReturn:
    print(f"{name}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def validated(parser: OneLineParser, model: type[M], argv: Sequence[str] | None) -> M:
    """Parse and validate; the first problem names its flag. A `data_dir` must be a directory."""
    args = parser.parse_args(argv)
    try:
        config = model.model_validate(vars(args))
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(parser.name, f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']} (got {first.get('input')!r})")
    data_dir = getattr(config, "data_dir", None)
    if isinstance(data_dir, Path) and data_dir.exists() and not data_dir.is_dir():
        fail(parser.name, f"--data-dir: {data_dir} exists and is not a directory")
    return config
