"""Flower (Celery monitoring UI and HTTP API) on a loopback port.

The broker URL (it may hold the Redis password) and the basic-auth pair go through the
environment, not argv. For the devcluster the API is open (FLOWER_UNAUTHENTICATED_API=true);
with basic_auth_file ('user:password' on one line) the API and UI need those credentials.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from br_devcluster.services._launch import HOST, pick_port, read_secret_file, start_and_wait
from br_devcluster.services.handle import ServiceError, ServiceHandle


def start_flower(work_dir: Path, broker_url: str, *, port: int | None = None,
                 basic_auth_file: Path | None = None, unauthenticated_api: bool = True) -> ServiceHandle:
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    port = pick_port(port)
    env = dict(os.environ, BR_BROKER=broker_url)  # what `celery --broker` would set, kept out of argv
    env.pop("FLOWER_BASIC_AUTH", None)
    if basic_auth_file is not None:
        pair = read_secret_file(basic_auth_file)
        if ":" not in pair:
            raise ServiceError(f"{basic_auth_file} must hold 'user:password'")
        env["FLOWER_BASIC_AUTH"] = pair
        unauthenticated_api = False
    env["FLOWER_UNAUTHENTICATED_API"] = "true" if unauthenticated_api else "false"
    args = [sys.executable, "-m", "br_common.fleet.flower", f"--address={HOST}", f"--port={port}"]
    log_path = work_dir / "flower.log"
    pid = start_and_wait("flower", args, log_path, port, env=env, cwd=work_dir)
    return ServiceHandle(name="flower", pid=pid, address=f"{HOST}:{port}", url=f"http://{HOST}:{port}",
                         log_path=log_path, args=args, data_dir=work_dir, stop_timeout=10.0)
