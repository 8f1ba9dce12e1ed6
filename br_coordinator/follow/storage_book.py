"""One storage-side task (lock, backupmeta, object checks) on the cluster's storage queue
(`br.<cluster>.storage`), followed by the engine until it answers.

Any live agent of the cluster may take it, with its own credentials; if the agent running it
vanishes (or every agent alive at send time does while it is still queued) it is resent, at most
`resends` times. Storage tasks are idempotent or report what they found (lock: "locked").
"""
from __future__ import annotations

from celery import Celery
from pydantic import BaseModel

from br_common.fleet import messages as m
from br_common.fleet.registry import Registry
from br_common.pd_client import PDClient
from br_coordinator.follow.agents import FollowConfig
from br_coordinator.follow.book import Action, Book, Fail, Progress, Send
from br_coordinator.follow.engine import FollowEngine, Outgoing

LANE = "storage"


class StorageCallBook(Book):
    def __init__(self, result_model: type[m.M], shadow: str, resends: int = 3) -> None:
        self.result_model, self.shadow, self.resends = result_model, shadow, resends
        self.result: m.M | None = None
        self._sends = 0

    @property
    def done(self) -> bool:
        return self.result is not None

    def start(self) -> list[Action]:
        return [self._send()]

    def succeeded(self, send: Send, payload: object) -> list[Action]:
        try:
            self.result = m.parse(self.result_model, payload)
        except m.MessageError as exc:
            return [Fail(f"{self.shadow}: {exc}")]
        return []

    def failed(self, send: Send, error: str) -> list[Action]:
        return [Fail(f"{self.shadow}: {error}")]

    def lost(self, send: Send, reason: str) -> list[Action]:
        if self._sends > self.resends:
            return [Fail(f"{self.shadow}: the agents running it kept disappearing")]
        return [self._send()]

    def progress(self) -> Progress:
        return Progress(int(self.done), 1, 0)

    def _send(self) -> Send:
        self._sends += 1
        return Send(self._sends, None, LANE)


def call_storage(app: Celery, pd: PDClient, registry: Registry, name: str, payload: BaseModel,
                 result_model: type[m.M], shadow: str, timeout: float = 300.0, resends: int = 3) -> m.M:
    """Run task `name` with `payload` on some agent of the cluster; its result as `result_model`."""
    book = StorageCallBook(result_model, shadow, resends)
    config = FollowConfig(concurrency=1, agent_wait=0.0, timeout=timeout)
    engine = FollowEngine(app, pd, registry, book, lambda attempt, send: Outgoing(name, payload, shadow), config,
                          title=shadow)
    engine.run()
    assert book.result is not None
    return book.result
