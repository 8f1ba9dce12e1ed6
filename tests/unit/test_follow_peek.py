"""The follow engine reads every flight's state and meta in one MGET per round (Celery's Redis result
backend on fakeredis): running progress, a success's payload, PENDING for no record; a failure is left
to its AsyncResult (its exception rebuilt as Celery does)."""
from __future__ import annotations

import fakeredis

from br_common.fleet.app import make_app
from br_coordinator.follow.agents import FollowConfig
from br_coordinator.follow.backup_book import BackupBook
from br_coordinator.follow.book import Send
from br_coordinator.follow.engine import Flight, FollowEngine
from tests.doubles import FakePD


def test_one_read_gives_every_flights_state_and_meta() -> None:
    app = make_app("redis://127.0.0.1:1/0")
    app.backend.client = fakeredis.FakeRedis()
    app.backend.store_result("run", {"agent": "h/1/b", "store_done": True}, "PROGRESS")
    app.backend.store_result("done", {"files": 3}, "SUCCESS")
    app.backend.mark_as_failure("failed", ValueError("boom"))
    engine = FollowEngine(app, FakePD([]), None, BackupBook([]), None, FollowConfig())
    for attempt in ("run", "done", "failed", "queued"):
        engine.in_flight[attempt] = Flight(Send(1, 1, "backup"), attempt, app.AsyncResult(attempt), set())
    assert engine._peek() == {"run": ("PROGRESS", {"agent": "h/1/b", "store_done": True}),
                              "done": ("SUCCESS", {"files": 3}), "queued": ("PENDING", None)}
