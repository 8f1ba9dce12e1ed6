"""The agent's storage cache: shared while used, closed once idle (a new dated path each day must
not leave a client behind for the agent's whole life)."""
from __future__ import annotations

import threading

from br_agent.storage_cache import StorageCache


class FakeStorage:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_tasks_share_a_storage_and_an_idle_one_is_closed_but_never_one_in_use() -> None:
    clock = Clock()
    cache = StorageCache(idle_close=60, clock=clock)
    opened: list[FakeStorage] = []

    def make() -> FakeStorage:
        opened.append(FakeStorage())
        return opened[-1]

    first = cache.get("s3://b/2026-12-03", make)
    assert cache.get("s3://b/2026-12-03", make) is first and len(opened) == 1  # shared
    clock.now = 1000
    cache.get("s3://b/2026-12-04", make)  # still held by this thread's task: not closed
    assert not first.closed and cache.open_count() == 2
    cache.release_held()
    clock.now = 1030
    cache.get("s3://b/2026-12-05", make)  # both released 30 s ago: kept
    assert not first.closed
    cache.release_held()
    clock.now = 1100
    cache.get("s3://b/2026-12-06", make)  # the other three idle for 70 s or more: closed
    assert all(s.closed for s in opened[:3]) and not opened[3].closed and cache.open_count() == 1
    cache.close()
    assert all(s.closed for s in opened)


def test_what_another_thread_holds_stays_open() -> None:
    clock = Clock()
    cache = StorageCache(idle_close=10, clock=clock)
    held = FakeStorage()
    got = threading.Event()
    done = threading.Event()

    def task() -> None:
        cache.get("s3://b/long", lambda: held)
        got.set()
        done.wait(5)
        cache.release_held()

    worker = threading.Thread(target=task)
    worker.start()
    got.wait(5)
    clock.now = 100
    cache.get("s3://b/other", FakeStorage)
    cache.release_held()
    assert not held.closed  # another task still uses it
    done.set()
    worker.join(5)
    clock.now = 200
    cache.get("s3://b/third", FakeStorage)
    assert held.closed
