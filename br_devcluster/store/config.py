"""The store's command line, validated into a pydantic model (bad input: one-line error, exit 2)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import Field, field_validator

from br_devcluster.cli_args import OneLineParser, ServerConfig, validated
from br_devcluster.load import parse_size
from br_devcluster.store.split_check import DEFAULT_INTERVAL, DEFAULT_REGION_SPLIT_SIZE

PROG = "python -m br_devcluster.store"


class StoreConfig(ServerConfig):
    pd: str = Field(min_length=3)
    gc_interval: float = Field(30.0, gt=0)
    # staged SSTs of failed or superseded downloads are never ingested: removed once this old
    staged_ttl: float = Field(3600.0, gt=0)
    # a region this store leads is split in two once its data is larger (TiKV's region-split-size)
    region_split_size: int = Field(DEFAULT_REGION_SPLIT_SIZE, gt=0)
    split_check_interval: float = Field(DEFAULT_INTERVAL, gt=0)

    @field_validator("region_split_size", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        """Sizes as the CLI writes them (64KiB, 96MiB), or a number of bytes."""
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("pd")
    @classmethod
    def _host_port(cls, value: str) -> str:
        address = value.removeprefix("http://").removeprefix("https://")
        host, sep, port = address.rpartition(":")
        if not host or not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT")
        return address

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def db_dir(self) -> Path:
        return self.data_dir / "db"

    @property
    def import_dir(self) -> Path:
        return self.data_dir / "import"

    @property
    def identity_file(self) -> Path:
        return self.data_dir / "store.json"

    @property
    def layout_file(self) -> Path:
        """Names the on-disk layout of db/ (engine.LAYOUT): an older one is refused."""
        return self.data_dir / "layout"


def parse_args(argv: Sequence[str] | None = None) -> StoreConfig:
    parser = OneLineParser("br_devcluster.store", prog=PROG,
                           description="A br-fleet devcluster store (TiKV-like, raw KV).")
    parser.add_argument("--pd", required=True, help="PD address HOST:PORT")
    parser.add_argument("--data-dir", required=True, help="data directory (created if missing)")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True)
    parser.add_argument("--gc-interval", default="30", help="seconds between GC passes")
    parser.add_argument("--staged-ttl", default="3600",
                        help="seconds a downloaded SST may wait for ingest before it is removed (at start and "
                             "in every GC pass)")
    parser.add_argument("--region-split-size", default=str(DEFAULT_REGION_SPLIT_SIZE),
                        help="split a region this store leads once its data is larger (bytes or 64KiB, 96MiB; "
                             "default 96MiB, as TiKV)")
    parser.add_argument("--split-check-interval", default=str(DEFAULT_INTERVAL),
                        help="seconds between split checks (default 10, as TiKV)")
    parser.add_argument("--log-file", default=None)
    parser.add_argument("--tls-ca", default="", help="CA (PEM) of the cluster: verifies PD and peers, and "
                        "clients must present a certificate it signed")
    parser.add_argument("--tls-cert", default="", help="this store's certificate (PEM): serve TLS")
    parser.add_argument("--tls-key", default="", help="its private key (PEM)")
    return validated(parser, StoreConfig, argv)
