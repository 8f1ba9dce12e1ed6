"""`br-agent --config FILE --check-config`: validate everything the agent would read at startup,
print the effective settings (secrets masked) and where each came from, exit 0 or 1.

Why offline: an operator runs it right after editing agent.toml, before (re)starting the unit,
on a host where Redis or PD may not be reachable yet. So it checks what can be checked locally
(the model's validation, files that must be readable, the staging directory) and connects to
nothing. The output is TOML, so it can be diffed or reused as a config file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from br_agent import staging_dir
from br_agent.settings import AgentSettings, sources
from br_common.fleet.broker import BrokerError
from br_common.fleet.config import FleetSettings

MASK = "***"


def problems(settings: AgentSettings) -> list[str]:
    """What would stop the agent from starting, beyond the model's own validation (one line each)."""
    found = []
    try:
        if settings.broker_password is None and settings.broker_password_file:
            Path(settings.broker_password_file).read_bytes()
        settings.broker_url("")
    except OSError as exc:
        found.append(f"broker_password_file: cannot read {settings.broker_password_file}: {exc.strerror}")
    except BrokerError as exc:
        found.append(f"broker: {exc}")
    found += _tls_files(settings.broker)
    staging = staging_dir.problem(settings.resolved_staging_dir())  # the very check the start runs
    found += [staging] if staging else []
    found += _import_dir(settings.store_import_dir)
    return found


def warnings(settings: AgentSettings, ignored: list[str]) -> list[str]:
    out = [f"{key}: not supported by this br-agent, ignored" for key in ignored]
    if not settings.allowed_destinations:
        out.append("allowed_destinations is empty: this agent accepts tasks for any storage destination")
    if not settings.trusted_coordinator_keys:
        out.append("trusted_coordinator_keys is empty: this agent runs unsigned tasks (signing off)")
    if "@" in urlsplit(settings.broker).netloc:
        out.append("broker: the URL carries credentials; use BR_AGENT_BROKER_PASSWORD or broker_password_file")
    return out


def report(settings: AgentSettings, config_file: str | None, overrides: dict[str, Any], out: TextIO) -> None:
    origin = sources(config_file, overrides)
    if settings.broker_password is None and settings.broker_password_file:
        origin["broker_password"] = "read from broker_password_file"
    print(f"# effective br-agent settings{f' from {config_file}' if config_file else ''} (secrets masked)", file=out)
    for name, value in effective(settings).items():
        print(f"{name} = {json.dumps(value)}  # {origin[name]}", file=out)


def effective(settings: AgentSettings) -> dict[str, Any]:
    """Every setting as the agent uses it; the password only as a mask (or "" when there is none)."""
    values: dict[str, Any] = {}
    for name in AgentSettings.model_fields:
        value = getattr(settings, name)
        if name == "broker":
            value = _without_password(settings.broker or FleetSettings().broker)
        elif name == "broker_password":
            value = MASK if settings.broker_password is not None or settings.broker_password_file else ""
        elif name == "staging_dir":
            value = str(settings.resolved_staging_dir())
        values[name] = str(value) if isinstance(value, Path) else value
    return values


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=f"{MASK}@{parts.netloc.rsplit('@', 1)[1]}").geturl()


def _tls_files(url: str) -> list[str]:
    query = parse_qs(urlsplit(url).query)
    return [f"broker: ssl_{kind} file {path} is not readable"
            for kind in ("ca_certs", "certfile", "keyfile") for path in query.get(f"ssl_{kind}", [])
            if not os.access(path, os.R_OK)]


def _import_dir(path: Path | None) -> list[str]:
    """TiKV creates it; the agent only removes files from it, so it must exist and be writable."""
    if path is None:
        return []
    if not path.is_dir():
        return [f"store_import_dir: {path} is not a directory (TiKV's <data-dir>/import)"]
    return [] if os.access(path, os.W_OK | os.X_OK) else [f"store_import_dir: {path} is not writable by this user"]
