"""PD's command line, validated into a pydantic model (bad input -> one-line error, exit 2)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from pydantic import BaseModel, Field, ValidationError

from br_devcluster.pd.layout import KEY_SPACE


class PDConfig(BaseModel):
    data_dir: Path
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    initial_stores: int = Field(1, ge=1)
    initial_regions: int = Field(1, ge=1, le=KEY_SPACE)
    max_replicas: int = Field(1, ge=1)
    gc_life_time: float = Field(600.0, ge=0)
    log_file: Path | None = None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(message)


def fail(message: str) -> NoReturn:
    print(f"br_devcluster.pd: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_args(argv: Sequence[str] | None = None) -> PDConfig:
    parser = _Parser(prog="python -m br_devcluster.pd", description="The br-fleet devcluster PD server.")
    parser.add_argument("--data-dir", required=True, help="state directory (created if missing)")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True)
    parser.add_argument("--initial-stores", default="1", help="stores to wait for before bootstrapping")
    parser.add_argument("--initial-regions", default="1", help="regions created at bootstrap")
    parser.add_argument("--max-replicas", default="1", help="peers per region")
    parser.add_argument("--gc-life-time", default="600", help="seconds of history GC keeps")
    parser.add_argument("--log-file", default=None)
    args = parser.parse_args(argv)
    try:
        config = PDConfig.model_validate({k: v for k, v in vars(args).items()})
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']} (got {first.get('input')!r})")
    if config.data_dir.exists() and not config.data_dir.is_dir():
        fail(f"--data-dir: {config.data_dir} exists and is not a directory")
    return config
