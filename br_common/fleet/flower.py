"""`br-flower [Flower options]`: Flower for the fleet, `celery -A br_common.fleet.app flower` plus
one fix. Every task is named by what it does (`backup job=... store=2 [..) 1 region`, see
br_common.fleet.app.send), which is what an operator wants on the Tasks page but would give
Prometheus a new `task` label value per range; so Flower's /metrics label is cut to the task's
kind (the name's first word: backup, backupmeta, lock, download, ingest, ...), a bounded set,
and the `worker` label of task-sent events to `br@host` (Celery names each sender process anew).

The broker comes from BR_BROKER (or CELERY_BROKER_URL, as `celery flower` reads it) with the
password variables br uses; address, port, auth and persistence from Flower's FLOWER_* variables.
"""
from __future__ import annotations

import re
import sys

_KIND = re.compile(r"[a-z][a-z0-9._-]{0,39}")
_ANONYMOUS = re.compile(r"gen\d+@(.*)")  # Celery's name for a sender that is no worker: one per br process


def task_kind(name: str) -> str:
    """The bounded metrics label of a task name; anything that is not one of ours is "other"."""
    first = (name or "").split(" ", 1)[0]
    return first if _KIND.fullmatch(first) else "other"


def worker_label(worker: str) -> str:
    """Task-sent events come from `br` as gen<pid>@host, a new label per run: one `br@host` instead."""
    match = _ANONYMOUS.fullmatch(worker or "")
    return f"br@{match.group(1)}" if match else worker


def bound_metric_labels() -> None:
    """Wrap Flower's PrometheusMetrics.observe_task so its `task` label is task_kind(name)."""
    from flower.events import PrometheusMetrics  # noqa: PLC0415 - only where Flower runs

    if getattr(PrometheusMetrics.observe_task, "_br_bounded", False):
        return
    original = PrometheusMetrics.observe_task

    def observe_task(self, worker, event, task):  # noqa: ANN001, ANN202 - Flower's signature
        name = event.get("name") or task.name or ""
        return original(self, worker_label(worker), {**event, "name": task_kind(name)}, task)

    observe_task._br_bounded = True  # type: ignore[attr-defined]
    PrometheusMetrics.observe_task = observe_task


def main(argv: list[str] | None = None) -> int:
    from celery.bin.celery import main as celery_main  # noqa: PLC0415

    bound_metric_labels()
    sys.argv = ["celery", "-A", "br_common.fleet.app", "flower", *(sys.argv[1:] if argv is None else argv)]
    return celery_main() or 0


if __name__ == "__main__":
    sys.exit(main())
