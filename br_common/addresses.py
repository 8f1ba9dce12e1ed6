"""host:port addresses as operators type them (`--pd`, `--store`), checked before anything connects.

Light on purpose (no gRPC import): `br --help` and argparse type checks use it.
"""
from __future__ import annotations


def parse_host_port(value: str, what: str = "address") -> str:
    """`host:port` (an http:// or https:// prefix dropped, as PD's client URLs carry one) -> `host:port`;
    ValueError (one line) for a missing host or a port outside 1-65535."""
    text = value.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"invalid {what} {value!r}: use host:port, e.g. 127.0.0.1:2379")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"invalid {what} {value!r}: port {port} is outside 1-65535")
    return f"{host}:{int(port)}"


def parse_pd_addresses(value: str) -> list[str]:
    """`host:port[,host:port...]` -> the list, in order, without duplicates."""
    out: list[str] = []
    for part in value.split(","):
        if not part.strip():
            continue
        address = parse_host_port(part, "PD address")
        if address not in out:
            out.append(address)
    if not out:
        raise ValueError("no PD address given: use --pd host:port[,host:port...]")
    return out
