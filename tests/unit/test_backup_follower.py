"""The follow engine with BackupBook on fakes (fakeredis, a scripted 'Celery'): re-resolving region errors, exact
coverage, lost agents resent at once with the old attempt ignored, bounded retries."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import fakeredis
import pytest

from br_common.fleet import messages as m
from br_common.fleet.jobs import JobSpec, JobStore, Lease
from br_common.fleet.keyranges import tiling_problem
from br_common.fleet.registry import AgentInfo, Registry
from br_common.fleet.task_errors import TaskFatalError, TaskIntegrityError, TaskRefusedError
from br_coordinator.errors import CommandError
from br_coordinator.backup_plan import PlannedTask
from br_coordinator.follow.agents import FollowConfig
from br_coordinator.follow.backup_book import BackupBook
from br_coordinator.follow.book import Send
from br_coordinator.follow.engine import FollowEngine, Outgoing
from br_coordinator.follow.resolvers import BackupResolver
from tests.doubles import FakePD


@dataclass
class FakeResult:
    state: str = "PENDING"
    result: object = None
    info: object = None

    def forget(self) -> None:
        pass


@dataclass
class FakeApp:
    """send_task hands each task to `worker`, which sets its FakeResult (now or later)."""
    worker: Callable[[dict, str, FakeResult], None]
    sent: list[tuple[str, dict]] = field(default_factory=list)

    def send_task(self, name: str, args: list, queue: str, task_id: str, shadow: str, **_: object) -> FakeResult:
        result = FakeResult()
        self.sent.append((queue, args[0]))
        self.worker(args[0], queue, result)
        return result


def _agent(store_id: int, pid: int) -> AgentInfo:
    return AgentInfo(cluster_id=1, store_id=store_id, store_address="x", hostname="h", pid=pid, boot_id="b" * 36,
                     version="1", started=float(pid))


def _setup(worker: Callable, pd: FakePD, agents: list[AgentInfo], **config: object):  # noqa: ANN202
    client = fakeredis.FakeRedis()
    spec = JobSpec(kind="backup", cluster_id=1, storage_url="s3://b/p", ranges=[m.KeyRange()])
    jobs = JobStore(client, spec.job_id())
    jobs.create(spec)
    lease = Lease(client, jobs.lease_key)
    assert lease.acquire()
    registry = Registry(client)
    for agent in agents:
        registry.publish(agent, ttl=60)

    def make_task(attempt: str, send: Send) -> Outgoing:
        task: PlannedTask = send.body
        return Outgoing(m.BACKUP_RANGE, m.BackupRangeTask(
            job_id=jobs.job_id, attempt=attempt, cluster_id=1, store_id=task.store_id, range=task.range,
            backup_ts=10, storage=m.StorageSpec(url="s3://b/p")), "backup")

    max_attempts = config.pop("max_attempts", 10)
    settings = FollowConfig(poll_interval=0.0, backoff_base=0.0, registry_refresh=0.0, **config)
    app = FakeApp(worker)

    def follower(todo: list[m.KeyRange]) -> FollowEngine:
        book = BackupBook(todo, max_attempts)
        return FollowEngine(app, pd, registry, book, make_task, settings, BackupResolver(pd, book), jobs, [lease])

    return follower, app, jobs, registry


def _ok(task: m.BackupRangeTask, agent: str = "h/1/bbbbbbbb", uncovered: list[m.UncoveredRange] = ()) -> dict:
    covered = [m.CoveredRange(range=task.range, files=[m.FileInfo(name=f"{task.store_id}/{task.attempt}.sst",
                                                                  size=1)])] if not uncovered else []
    return m.BackupRangeResult(job_id=task.job_id, attempt=task.attempt, store_id=task.store_id, agent=agent,
                               covered=covered, uncovered=list(uncovered)).model_dump(mode="json")


def test_region_errors_are_re_resolved_until_covered_exactly_once() -> None:
    pd = FakePD.from_bounds([b"b", b"d"], [1, 2, 1])

    def worker(payload: dict, queue: str, result: FakeResult) -> None:
        task = m.parse(m.BackupRangeTask, payload)
        if task.range.start == b"b" and task.store_id == 2 and not pd.moved:
            pd.moved = True  # the leader moved to store 3 and the region split meanwhile
            pd.set_bounds([b"b", b"c", b"d"], [1, 3, 3, 1])
            gap = m.UncoveredRange(range=task.range, reason="NotLeader(region 2, leader on store 3)")
            result.state, result.result = "SUCCESS", _ok(task, uncovered=[gap])
        else:
            result.state, result.result = "SUCCESS", _ok(task)

    pd.moved = False
    follower, app, jobs, _ = _setup(worker, pd, [_agent(1, 1), _agent(2, 2), _agent(3, 3)])
    totals = follower([m.KeyRange()]).run()
    ranges = [r.range for r in jobs.ranges()]
    assert tiling_problem(m.KeyRange(), ranges) == ""
    assert [q for q, _ in app.sent].count("br.1.store.3") == 1  # [b, d) went to the new leader as one task
    assert totals.retries == 1


def test_lost_agent_work_is_resent_at_once_and_the_old_result_ignored() -> None:
    pd = FakePD.from_bounds([], [1])
    results: list[FakeResult] = []

    def worker(payload: dict, queue: str, result: FakeResult) -> None:
        results.append(result)
        task = m.parse(m.BackupRangeTask, payload)
        if len(results) == 1:  # the first agent starts it, then is SIGKILLed and restarted
            result.state, result.info = "PROGRESS", {"agent": "h/1/bbbbbbbb", "bytes_uploaded": 5}
            registry.publish(_agent(1, 2), ttl=60)  # restarted agent: supersedes pid 1
        else:
            result.state, result.result = "SUCCESS", _ok(task, agent="h/2/bbbbbbbb")

    follower, app, jobs, registry = _setup(worker, pd, [_agent(1, 1)])
    totals = follower([m.KeyRange()]).run()
    assert totals.resent_lost == 1 and len(app.sent) == 2
    first_attempt = app.sent[0][1]["attempt"]
    assert "superseded" in jobs.skip_reason(first_attempt)  # a late redelivery does nothing
    results[0].state, results[0].result = "SUCCESS", {"late": True}
    assert len(jobs.ranges()) == 1 and jobs.ranges()[0].files[0].name.endswith(f"{app.sent[1][1]['attempt']}.sst")


def test_bounded_retries_fail_naming_the_range_and_the_error() -> None:
    def worker(payload: dict, queue: str, result: FakeResult) -> None:
        result.state, result.result = "FAILURE", RuntimeError("disk full on store 1")

    follower, _, _, _ = _setup(worker, FakePD.from_bounds([], [1]), [_agent(1, 1)], max_attempts=3)
    with pytest.raises(CommandError, match=r"range \[-inf..\+inf\) failed after 3 attempts; last error: disk full"):
        follower([m.KeyRange()]).run()


def test_a_store_without_agent_is_named() -> None:
    follower, _, _, _ = _setup(lambda *a: None, FakePD.from_bounds([], [7]), [_agent(1, 1)], agent_wait=0.0)
    with pytest.raises(CommandError, match=r"no br-agent for store 7 \(queue br.1.store.7\): start br-agent on the "
                                           r"host of 10.0.0.7:20160"):
        follower([m.KeyRange()]).run()


@pytest.mark.parametrize("error", [TaskRefusedError, TaskFatalError, TaskIntegrityError])
def test_a_failure_no_retry_can_help_fails_at_once_with_the_agents_line(error: type[Exception]) -> None:
    sent = []

    def worker(payload: dict, queue: str, result: FakeResult) -> None:
        sent.append(queue)
        line = 'agent of store 1 refuses s3://b/p: not in its allowed_destinations ["s3://bkt/tidb"]'
        result.state, result.result = "FAILURE", error(line)

    follower, _, _, _ = _setup(worker, FakePD.from_bounds([], [1]), [_agent(1, 1)], max_attempts=5)
    with pytest.raises(CommandError) as caught:
        follower([m.KeyRange()]).run()
    assert str(caught.value).startswith("agent of store 1 refuses s3://b/p: not in its allowed_destinations")
    assert len(sent) == 1  # not retried


def test_a_storage_call_is_resent_when_its_agent_is_lost_then_gives_up() -> None:
    from br_coordinator.follow.book import Fail
    from br_coordinator.follow.storage_book import StorageCallBook

    book = StorageCallBook(m.WriteBackupMetaResult, "backupmeta job=j", resends=1)
    (first,) = book.start()
    assert first.store_id is None  # the storage queue: any agent of the cluster
    (again,) = book.lost(first, "agent lost")
    (fail,) = book.lost(again, "agent lost")
    assert isinstance(fail, Fail) and fail.reason == "backupmeta job=j: the agents running it kept disappearing"
    answer = {"outcome": "written", "name": "backupmeta", "size": 3}
    assert book.succeeded(again, answer) == [] and book.done
    assert book.result == m.WriteBackupMetaResult(**answer)


def test_a_gap_whose_kind_stops_the_job_is_not_retried() -> None:
    sent = []

    def worker(payload: dict, queue: str, result: FakeResult) -> None:
        task = m.parse(m.BackupRangeTask, payload)
        sent.append(task.attempt)
        gap = m.UncoveredRange(range=task.range, reason="the store cannot read its data", error_kind="fatal")
        result.state, result.result = "SUCCESS", _ok(task, uncovered=[gap])

    follower, _, _, _ = _setup(worker, FakePD.from_bounds([], [1]), [_agent(1, 1)])
    with pytest.raises(CommandError, match=r"on store 1: the store cannot read its data"):
        follower([m.KeyRange()]).run()
    assert len(sent) == 1


class _StagedResult:
    """A task that streams for two state reads, uploads (progress says store_done) for two more, then succeeds."""

    def __init__(self, task: m.BackupRangeTask) -> None:
        self.task, self.reads, self.result = task, 0, None

    @property
    def state(self) -> str:
        self.reads += 1
        if self.reads > 4:
            self.result = _ok(self.task)
            return "SUCCESS"
        return "PROGRESS"

    @property
    def info(self) -> dict:
        return {"agent": f"h/{self.task.store_id}/bbbbbbbb", "store_done": self.reads > 2}

    def forget(self) -> None:
        pass


def test_a_task_past_its_stream_frees_its_store_slot_but_tails_are_bounded() -> None:
    pd = FakePD.from_bounds([bytes([k]) for k in range(1, 12)], [1, 2] * 6)  # one region per task
    follower, _, jobs, _ = _setup(lambda payload, queue, result: None, pd, [_agent(1, 1), _agent(2, 2)],
                                  concurrency=2, tail_in_flight=2)
    engine = follower([m.KeyRange()])
    engine.app.send_task = lambda name, args, queue, task_id, shadow, **_: _StagedResult(
        m.parse(m.BackupRangeTask, args[0]))
    peaks = {"streaming": 0, "total": 0}

    def watch(_progress: object) -> None:
        for store in (1, 2):
            flights = [f for f in engine.in_flight.values() if f.send.store_id == store]
            peaks["streaming"] = max(peaks["streaming"], sum(not f.tail for f in flights))
            peaks["total"] = max(peaks["total"], len(flights))

    engine.on_progress = watch
    engine.run()
    assert tiling_problem(m.KeyRange(), [r.range for r in jobs.ranges()]) == ""
    assert peaks == {"streaming": 2, "total": 4}  # the store never streams more than 2; 2 more upload meanwhile
