"""Start a service process and wait until it listens, with a clear error when it does not."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from br_common.procs import free_port, port_open, spawn, stop_pid, wait_for_port
from br_devcluster.services.handle import ServiceError

HOST = "127.0.0.1"
LOG_TAIL = 400


def pick_port(port: int | None = None, grpc_offset: bool = False) -> int:
    """The given port, or a free one; with grpc_offset, port+10000 must be free too (SeaweedFS)."""
    if port is not None:
        if port_open(HOST, port) or (grpc_offset and port_open(HOST, port + 10000)):
            raise ServiceError(f"port {port} on {HOST} is already in use")
        return port
    for _ in range(50):
        candidate = free_port()
        if not grpc_offset or not port_open(HOST, candidate + 10000):
            return candidate
    raise ServiceError("found no free loopback port pair (port, port+10000)")


def start_and_wait(name: str, args: Sequence[str], log_path: Path, port: int, *,
                   env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 30.0) -> int:
    """Spawn, wait for the port; on failure stop the process and raise ServiceError. Returns the pid."""
    try:
        proc = spawn(args, log_path, env=dict(env) if env is not None else None, cwd=cwd)
    except FileNotFoundError:
        raise ServiceError(f"{name}: {args[0]} is not installed or not on PATH") from None
    try:
        wait_for_port(HOST, port, timeout=timeout, proc=proc)
    except (RuntimeError, TimeoutError) as exc:
        stop_pid(proc.pid)
        raise ServiceError(f"{name} did not start ({exc}); log {log_path}: {log_tail(log_path)}") from None
    return proc.pid


def log_tail(log_path: Path) -> str:
    try:
        text = log_path.read_text(errors="replace")[-LOG_TAIL:]
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())[-LOG_TAIL:]


def write_private(path: Path, content: str) -> Path:
    """Write a file only its owner can read (0600 from creation, no window with wider rights)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(content)
    return path


def read_secret_file(path: Path) -> str:
    """A password from a file (first line, stripped); ServiceError when missing or empty."""
    try:
        secret = Path(path).read_text().strip().splitlines()
    except OSError as exc:
        raise ServiceError(f"cannot read secret file {path}: {exc.strerror}") from None
    if not secret or not secret[0]:
        raise ServiceError(f"secret file {path} is empty")
    return secret[0]
