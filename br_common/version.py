"""The installed br-fleet version (BackupMeta.br_version, the agent registry, --version): its own
module so `--help` and `--version` import nothing heavy."""
from __future__ import annotations


def fleet_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("br-fleet")
    except PackageNotFoundError:
        return "0.0.0+unknown"
