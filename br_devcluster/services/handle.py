"""What a launcher returns: enough to reach, inspect and stop one local service process."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from br_common.procs import pid_alive, stop_pid


class ServiceError(RuntimeError):
    """A service could not start (missing binary, port in use, early exit); one line with the log path."""


class ServiceHandle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # 'redis', 'seaweedfs', 'moto', 'imds', 'flower'
    pid: int
    address: str  # host:port of the main listener
    url: str  # how clients reach it (redis://, http://); never carries a password
    log_path: Path
    args: list[str]  # the command line (holds no secret: secrets go through 0600 files or env)
    data_dir: Path | None = None
    stop_timeout: float = 10.0

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    def alive(self) -> bool:
        return pid_alive(self.pid)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after stop_timeout; a no-op when already gone."""
        stop_pid(self.pid, timeout=self.stop_timeout)
