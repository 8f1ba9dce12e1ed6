"""The agent's open storages, shared by the tasks that use the same URL, credentials and rate
(one rate limit per store: AgentContext.open_storage), and closed once no task has used one for a
while: an agent that backs up to a new dated path every day would otherwise keep a boto3 client
and its transfer threads per day for as long as it runs.

    storage = cache.get(key, open_fn)    # in a task; counts the task as a user of it
    cache.release_held()                 # when the task ends (br_agent.task_base)
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from br_common.storage import ExternalStorage

log = logging.getLogger(__name__)

IDLE_CLOSE = 300.0  # seconds a storage no task uses stays open (the next task often wants it again)


@dataclass
class _Entry:
    storage: ExternalStorage
    users: int = 0
    last_used: float = 0.0


class StorageCache:
    def __init__(self, idle_close: float = IDLE_CLOSE, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_close, self._clock = idle_close, clock
        self._entries: dict[Hashable, _Entry] = {}
        self._lock = threading.Lock()
        self._held = threading.local()  # the keys the current thread's task uses

    def get(self, key: Hashable, open_storage: Callable[[], ExternalStorage]) -> ExternalStorage:
        idle = self._close_idle()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(open_storage())
            entry.users += 1
            entry.last_used = self._clock()
        self._held_keys().append(key)
        self._close(idle)
        return entry.storage

    def release_held(self) -> None:
        """The current thread's task ended: it no longer uses what it opened."""
        keys, self._held.keys = self._held_keys(), []
        now = self._clock()
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.users = max(0, entry.users - 1)
                    entry.last_used = now

    def open_count(self) -> int:
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        self._close([e.storage for e in entries])

    def _close_idle(self) -> list[ExternalStorage]:
        now = self._clock()
        with self._lock:
            idle = [k for k, e in self._entries.items() if e.users == 0 and now - e.last_used > self.idle_close]
            return [self._entries.pop(k).storage for k in idle]

    def _held_keys(self) -> list[Hashable]:
        if not hasattr(self._held, "keys"):
            self._held.keys = []
        return self._held.keys

    @staticmethod
    def _close(storages: list[ExternalStorage]) -> None:
        for storage in storages:
            try:
                storage.close()
            except Exception as exc:  # noqa: BLE001 - closing an idle client must not fail a task
                log.warning("closing an idle storage: %s", exc)
