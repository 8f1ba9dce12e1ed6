"""PD's command line, validated into a pydantic model (bad input -> one-line error, exit 2)."""
from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from br_devcluster.cli_args import OneLineParser, ServerConfig, validated
from br_devcluster.pd.layout import KEY_SPACE


class PDConfig(ServerConfig):
    initial_stores: int = Field(1, ge=1)
    initial_regions: int = Field(1, ge=1, le=KEY_SPACE)
    max_replicas: int = Field(1, ge=1)
    gc_life_time: float = Field(600.0, ge=0)
    http_port: int = Field(0, ge=0, le=65535)  # PD's HTTP API (0: any free port; advertised in GetMembers)
    tso_clock_offset: float = 0.0  # seconds added to the clock the TSO follows (negative: it lags)


def parse_args(argv: Sequence[str] | None = None) -> PDConfig:
    parser = OneLineParser("br_devcluster.pd", prog="python -m br_devcluster.pd",
                           description="The br-fleet devcluster PD server.")
    parser.add_argument("--data-dir", required=True, help="state directory (created if missing)")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True)
    parser.add_argument("--initial-stores", default="1", help="stores to wait for before bootstrapping")
    parser.add_argument("--initial-regions", default="1", help="regions created at bootstrap")
    parser.add_argument("--max-replicas", default="1", help="peers per region")
    parser.add_argument("--gc-life-time", default="600", help="seconds of history GC keeps")
    parser.add_argument("--http-port", default="0",
                        help="port of PD's HTTP API (admin/reset-ts), advertised as a second client URL (default: any)")
    parser.add_argument("--tso-clock-offset", default="0",
                        help="seconds added to the clock PD's TSO follows, e.g. -60 for a PD whose clock lags")
    parser.add_argument("--log-file", default=None)
    parser.add_argument("--tls-ca", default="", help="CA (PEM): clients must present a certificate it signed")
    parser.add_argument("--tls-cert", default="", help="server certificate (PEM): serve TLS")
    parser.add_argument("--tls-key", default="", help="its private key (PEM)")
    return validated(parser, PDConfig, argv)
