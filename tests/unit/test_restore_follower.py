"""The follow engine with RestoreBook and its resolver, without processes: re-resolving after
region errors, spotting lost work."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from br_common.backupmeta import meta as backupmeta
from br_common.fleet.messages import KeyRange
from br_common.fleet.registry import AgentInfo
from br_common.fleet.restore_messages import DownloadResult, IngestResult, StagedPiece
from br_common.fleet.task_errors import TaskRefusedError
from br_common.kvproto import brpb_pb2, metapb_pb2
from br_common.pd_client import RegionInfo
from br_coordinator import restore_plan as rp
from br_coordinator.follow.agents import FollowConfig
from br_coordinator.follow.book import Resolve, Send
from br_coordinator.follow.engine import Flight, FollowEngine
from br_coordinator.follow.resolvers import RestoreResolver
from br_coordinator.follow.restore_book import INGEST, RestoreBook
from br_coordinator.errors import CommandError
from tests.doubles import FakePD


def _region(rid: int, start: bytes, end: bytes, leader: int = 1, version: int = 1, stores=(1, 2)) -> RegionInfo:
    peers = [metapb_pb2.Peer(id=rid * 10 + s, store_id=s) for s in stores]
    region = metapb_pb2.Region(id=rid, start_key=start, end_key=end, peers=peers,
                               region_epoch=metapb_pb2.RegionEpoch(conf_ver=1, version=version))
    return RegionInfo(region, next(p for p in peers if p.store_id == leader))


def _follower(pd: FakePD, parts) -> FollowEngine:  # noqa: ANN001
    jobs = SimpleNamespace(job_id="j", cancelled=[], cancel_attempt=lambda a: jobs.cancelled.append(a))
    book = RestoreBook(parts)
    return FollowEngine(None, pd, None, book, None, FollowConfig(), RestoreResolver(pd, book, "j"), jobs,
                        [SimpleNamespace(lost=threading.Event(), key="k")])


def _flight(attempt: str, result: object) -> Flight:
    return Flight(Send(1, 1, "download"), attempt, result, {"h/100/b"})


def _parts():  # noqa: ANN202
    f = brpb_pb2.File(name="1/a.sst", sha256=b"\x01" * 32, start_key=b"a", end_key=b"z", cf="default", size=1)
    return rp.select_parts(backupmeta.files(brpb_pb2.BackupMeta(end_version=1, is_raw_kv=True, files=[f])),
                           [KeyRange()])


def test_a_moved_leader_only_needs_a_new_ingest() -> None:
    parts = _parts()
    pd = FakePD([_region(7, b"", b"", leader=1)])
    follower = _follower(pd, parts)
    work = rp.assign_regions(parts, pd.regions, "j")[0]
    follower.book.add(work)
    for store in (1, 2):
        staged = [StagedPiece(uuid=p.uuid, first_key=b"a", last_key=b"y") for p in work.pieces]
        follower.book.downloaded(1, store, DownloadResult(job_id="j", attempt="a", store_id=store, agent="x",
                                                           region_id=7, staged=staged))
    (redo,) = follower.book.ingested(1, IngestResult(job_id="j", attempt="b", store_id=1, agent="x", region_id=7,
                                                     error="NotLeader", error_kind="region"))
    pd.regions = [_region(7, b"", b"", leader=2)]
    (ingest,) = follower.resolver(redo)
    assert ingest.lane == INGEST and ingest.store_id == 2


def test_a_split_region_gets_new_work_on_every_current_peer() -> None:
    parts = _parts()
    pd = FakePD([_region(7, b"", b"")])
    follower = _follower(pd, parts)
    work = rp.assign_regions(parts, pd.regions, "j")[0]
    follower.book.add(work)
    pd.regions = [_region(7, b"", b"m", version=2), _region(9, b"m", b"", leader=2, version=2, stores=(2, 3))]
    follower.book.ingested(1, IngestResult(job_id="j", attempt="b", store_id=1, agent="x", region_id=7,
                                           error="EpochNotMatch", error_kind="region"))
    follower.book.task_failed(1, "EpochNotMatch")
    actions = follower.resolver(Resolve(1, "EpochNotMatch"))
    assert sorted((a.body.region.id, a.store_id) for a in actions) == [(7, 1), (7, 2), (9, 2), (9, 3)]
    assert {p.range.end for a in actions for p in a.body.pieces} == {b"m", b"z"}


def test_a_region_without_leader_is_retried_later() -> None:
    parts = _parts()
    pd = FakePD([_region(7, b"", b"")])
    follower = _follower(pd, parts)
    work = rp.assign_regions(parts, pd.regions, "j")[0]
    follower.book.add(work)
    pd.regions = [RegionInfo(pd.regions[0].region, None)]
    follower.book.task_failed(1, "NotLeader")
    (again,) = follower.resolver(Resolve(1, "NotLeader"))
    assert isinstance(again, Resolve) and "no leader" in again.reason


def _agent(pid: int) -> AgentInfo:
    return AgentInfo(store_id=1, store_address="h:1", hostname="h", pid=pid, boot_id="b", version="v",
                     worker_name="br-agent-store1@h")


def test_started_work_of_a_vanished_agent_is_lost() -> None:
    follower = _follower(FakePD([]), _parts())
    follower.watch.agents = {a.instance: a for a in [_agent(100)]}
    started = SimpleNamespace(info={"hostname": "br-agent-store1@h", "pid": 100})
    watch = follower.watch
    assert not watch.lost("STARTED", started.info, {"h/100/b"})
    watch.agents = {a.instance: a for a in [_agent(200)]}  # restarted: a new pid
    assert watch.lost("STARTED", started.info, {"h/100/b"})
    assert watch.lost("PENDING", None, {"h/100/b"})  # every agent that could take it is gone
    assert not watch.lost("PENDING", None, {"h/100/b", "h/200/b"})


def test_a_running_task_its_live_agent_no_longer_lists_is_resent_after_a_grace(monkeypatch) -> None:  # noqa: ANN001
    """The outcome of a task that ended while the broker was down was never stored: its state
    says it runs, its agent's heartbeat says it does not; after result_grace it is resent."""
    follower = _follower(FakePD([]), _parts())
    follower.config = follower.config.model_copy(update={"result_grace": 5.0})
    agent = _agent(100).model_copy(update={"running": ["other"]})
    follower.watch.agents = {agent.instance: agent}
    flight = _flight("x", SimpleNamespace(info={"hostname": "br-agent-store1@h", "pid": 100}))
    now = [1000.0]
    monkeypatch.setattr("br_coordinator.follow.engine.time.monotonic", lambda: now[0])
    assert follower._gone(flight, "STARTED") == ""  # unlisted since now: within the grace
    now[0] += 6
    assert "outcome was never stored" in follower._gone(flight, "STARTED")
    follower.watch.agents = {agent.instance: agent.model_copy(update={"running": ["x"]})}
    assert follower._gone(flight, "STARTED") == "" and flight.unlisted_since is None  # listed: it runs


def test_an_allowlist_refusal_stops_the_restore_at_once_with_the_agents_line() -> None:
    parts = _parts()
    pd = FakePD([_region(7, b"", b"")])
    follower = _follower(pd, parts)
    follower.book.add(rp.assign_regions(parts, pd.regions, "j")[0])
    line = 'agent of store 1 refuses s3://b/p: not in its allowed_destinations ["s3://bkt/tidb"]'
    failed = SimpleNamespace(state="FAILURE", result=TaskRefusedError(line), info=None)
    follower.in_flight["x"] = _flight("x", failed)
    with pytest.raises(CommandError) as caught:
        follower._poll()
    assert str(caught.value) == line


def test_any_other_failure_is_redone_not_fatal() -> None:
    parts = _parts()
    pd = FakePD([_region(7, b"", b"")])
    follower = _follower(pd, parts)
    follower.book.add(rp.assign_regions(parts, pd.regions, "j")[0])
    failed = SimpleNamespace(state="FAILURE", result=RuntimeError("disk full"), info=None)
    follower.in_flight["x"] = _flight("x", failed)
    follower._poll()
    follower._flush()  # the job record hears of it at the next round's start
    assert not follower.in_flight and follower.jobs.cancelled == ["x"]
    assert [redo.reason for _, redo in follower.resolves] == ["download on store 1: disk full"]
