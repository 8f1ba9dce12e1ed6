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

from pydantic import BaseModel, Field, ValidationError

from br_common.grpc_tls import TLSConfig

M = TypeVar("M", bound=BaseModel)


class ServerConfig(BaseModel):
    """What every devcluster server (PD, store) is started with."""

    data_dir: Path
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    log_file: Path | None = None
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""

    @property
    def tls(self) -> TLSConfig:
        """With a cert the server speaks TLS (with a CA it requires clients' certificates); a store
        also talks TLS to PD and its peers with it."""
        return TLSConfig(ca=self.tls_ca, cert=self.tls_cert, key=self.tls_key)


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
