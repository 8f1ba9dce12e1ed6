"""The signed tasks an agent has already received, remembered until their signatures expire, so
a copy of a message (taken from the broker's unacked hash, say) replayed later is refused.

A task id is the signed nonce: the coordinator sends every attempt under a fresh id, and a
redelivery of one an agent already began is never needed (work lost with a dead agent is resent
under a new id). The memory is the agent's own (a file in its staging dir, appended as tasks
arrive, pruned of expired entries at start): whoever can write to the broker cannot clear it.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "seen-tasks"


class SeenTasks:
    def __init__(self, path: Path, now: float | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._expiry = self._load(now if now is not None else time.time())
        self._rewrite()

    def claim(self, task_id: str, expires: int) -> bool:
        """True the first time `task_id` is seen (now remembered until `expires`), else False."""
        with self._lock:
            if task_id in self._expiry:
                return False
            self._expiry[task_id] = expires
            with open(self.path, "a", encoding="ascii") as log_file:
                log_file.write(f"{task_id} {expires}\n")
            return True

    def _load(self, now: float) -> dict[str, int]:
        try:
            lines = self.path.read_text(encoding="ascii").splitlines()
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise OSError(f"cannot read the agent's record of received tasks {self.path}: {exc}") from None
        kept: dict[str, int] = {}
        for line in lines:
            task_id, _, expires = line.partition(" ")
            if expires.isdigit() and int(expires) >= now:
                kept[task_id] = int(expires)
        return kept

    def _rewrite(self) -> None:
        """Only unexpired entries stay (atomically: a crash leaves the old file or the new one)."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(f"{t} {e}\n" for t, e in self._expiry.items()), encoding="ascii")
        os.replace(tmp, self.path)
