"""RestoreFollower without processes: re-resolving after region errors, spotting lost work."""
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
from br_coordinator import restore_follower, restore_plan as rp
from br_coordinator.errors import CommandError
from tests.doubles import FakePD


def _region(rid: int, start: bytes, end: bytes, leader: int = 1, version: int = 1, stores=(1, 2)) -> RegionInfo:
    peers = [metapb_pb2.Peer(id=rid * 10 + s, store_id=s) for s in stores]
    region = metapb_pb2.Region(id=rid, start_key=start, end_key=end, peers=peers,
                               region_epoch=metapb_pb2.RegionEpoch(conf_ver=1, version=version))
    return RegionInfo(region, next(p for p in peers if p.store_id == leader))


def _follower(pd: FakePD, parts) -> restore_follower.RestoreFollower:  # noqa: ANN001
    jobs = SimpleNamespace(job_id="j", cancelled=[], cancel_attempt=lambda a: jobs.cancelled.append(a))
    return restore_follower.RestoreFollower(
        app=None, pd=pd, registry=None, jobs=jobs, lease=SimpleNamespace(lost=threading.Event()),
        book=rp.RestoreBook(parts), make_download=None, make_ingest=None,
        config=restore_follower.RestoreFollowConfig(), on_part=lambda done: None, on_progress=lambda b, p: None)


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
    (ingest,) = follower._resolve(redo)
    assert isinstance(ingest, rp.SendIngest) and ingest.store_id == 2


def test_a_split_region_gets_new_work_on_every_current_peer() -> None:
    parts = _parts()
    pd = FakePD([_region(7, b"", b"")])
    follower = _follower(pd, parts)
    work = rp.assign_regions(parts, pd.regions, "j")[0]
    follower.book.add(work)
    pd.regions = [_region(7, b"", b"m", version=2), _region(9, b"m", b"", leader=2, version=2, stores=(2, 3))]
    actions = follower._resolve(rp.Redo(1, work, "EpochNotMatch", ingest_only=True))
    assert sorted((a.work.region.id, a.store_id) for a in actions) == [(7, 1), (7, 2), (9, 2), (9, 3)]
    assert {p.range.end for a in actions for p in a.work.pieces} == {b"m", b"z"}


def test_a_region_without_leader_is_retried_later() -> None:
    parts = _parts()
    pd = FakePD([_region(7, b"", b"")])
    follower = _follower(pd, parts)
    work = rp.assign_regions(parts, pd.regions, "j")[0]
    follower.book.add(work)
    pd.regions = [RegionInfo(pd.regions[0].region, None)]
    (again,) = follower._resolve(rp.Redo(1, work, "NotLeader", ingest_only=False))
    assert isinstance(again, rp.Redo) and "no leader" in again.reason


def _agent(pid: int) -> AgentInfo:
    return AgentInfo(store_id=1, store_address="h:1", hostname="h", pid=pid, boot_id="b", version="v",
                     worker_name="br-agent-store1@h")


def test_started_work_of_a_vanished_agent_is_lost() -> None:
    follower = _follower(FakePD([]), _parts())
    follower.watch.agents = {a.instance: a for a in [_agent(100)]}
    started = SimpleNamespace(info={"hostname": "br-agent-store1@h", "pid": 100})
    flight = restore_follower.Flight("x", "download", 1, 1, started, {"h/100/b"})
    assert not follower._lost(flight, "STARTED")
    follower.watch.agents = {a.instance: a for a in [_agent(200)]}  # restarted: a new pid
    assert follower._lost(flight, "STARTED")
    queued = restore_follower.Flight("y", "download", 1, 1, SimpleNamespace(info=None), {"h/100/b"})
    assert follower._lost(queued, "PENDING")  # every agent that could take it is gone
    queued.agents_at_send.add("h/200/b")
    assert not follower._lost(queued, "PENDING")


def test_an_allowlist_refusal_stops_the_restore_at_once_with_the_agents_line() -> None:
    parts = _parts()
    pd = FakePD([_region(7, b"", b"")])
    follower = _follower(pd, parts)
    follower.book.add(rp.assign_regions(parts, pd.regions, "j")[0])
    line = 'agent of store 1 refuses s3://b/p: not in its allowed_destinations ["s3://bkt/tidb"]'
    failed = SimpleNamespace(state="FAILURE", result=TaskRefusedError(line), info=None)
    follower.in_flight["x"] = restore_follower.Flight("x", "download", 1, 1, failed, {"h/100/b"})
    with pytest.raises(CommandError) as caught:
        follower._poll()
    assert str(caught.value) == line


def test_any_other_failure_is_redone_not_fatal() -> None:
    parts = _parts()
    pd = FakePD([_region(7, b"", b"")])
    follower = _follower(pd, parts)
    follower.book.add(rp.assign_regions(parts, pd.regions, "j")[0])
    failed = SimpleNamespace(state="FAILURE", result=RuntimeError("disk full"), info=None)
    follower.in_flight["x"] = restore_follower.Flight("x", "download", 1, 1, failed, {"h/100/b"})
    follower._poll()
    assert not follower.in_flight and follower.jobs.cancelled == ["x"]
    assert [reason for _, redo in follower.redos for reason in [redo.reason]] == ["download on store 1: disk full"]
