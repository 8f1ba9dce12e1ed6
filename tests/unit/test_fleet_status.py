"""`br fleet status` logic and formatting on fakes (fakeredis for heartbeats, queues and jobs)."""
from __future__ import annotations

import time

import fakeredis
import pytest

from br_common.fleet import messages as m
from br_common.fleet.jobs import JobSpec, JobStore, Lease, RangeRecord
from br_common.fleet.registry import AgentInfo, Registry
from br_common.kvproto import metapb_pb2
from br_coordinator.run import parse_args
from br_coordinator.fleet_status import age, gather, queue_depth, render
from tests.doubles import FakePD


def _agent(store_id: int, pid: int, **fields: object) -> AgentInfo:
    fields.setdefault("cluster_id", 42)
    return AgentInfo(store_id=store_id, store_address=f"10.0.1.2{store_id}:20160", hostname=f"tikv-{store_id}",
                     pid=pid, boot_id="b" * 36, version="0.1.0", **fields)


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def _fleet(client: fakeredis.FakeRedis) -> FakePD:
    registry = Registry(client)
    registry.publish(_agent(1, 101, allowed_destinations=["s3://bkt/prod"],
                            metrics_url="http://127.0.0.1:9464/metrics"), ttl=15)
    registry.publish(_agent(3, 103), ttl=15)
    registry.publish(_agent(9, 109), ttl=15)  # a store this PD does not know
    registry.publish(_agent(2, 202, cluster_id=7), ttl=15)  # store 2 of another cluster: not ours
    client.rpush("br.42.store.2", b"m1", b"m2")
    client.rpush("br.42.store.2\x06\x163", b"m3")  # kombu's priority-3 list of the same queue
    client.rpush("br.42.storage", b"s1")
    client.rpush("br.7.store.2", b"theirs")  # another cluster's queue of its store 2
    client.rpush("br.7.storage", b"theirs")
    stores = [(1, metapb_pb2.Up), (2, metapb_pb2.Up), (3, metapb_pb2.Up), (4, metapb_pb2.Tombstone)]
    return FakePD(stores=[metapb_pb2.Store(id=i, address=f"10.0.1.2{i}:20160", state=s) for i, s in stores],
                  cluster_id=42)


def test_gather_finds_agents_queues_strangers_and_missing_stores(client: fakeredis.FakeRedis) -> None:
    status = gather(_fleet(client), client)
    by_id = {s.id: s for s in status.stores}
    assert [a.pid for a in by_id[1].agents] == [101] and by_id[2].agents == [] and by_id[2].queue_depth == 3
    assert status.storage_queue_depth == 1 and [a.store_id for a in status.strangers] == [9]
    assert [s.id for s in status.missing()] == [2]  # the tombstone needs no agent
    assert [(a.cluster_id, a.pid) for a in status.others] == [(7, 202)]
    assert queue_depth(client, "br.42.store.7") == 0


def test_render_flags_the_store_without_agent_and_shows_each_agent(client: fakeredis.FakeRedis) -> None:
    status = gather(_fleet(client), client)
    lines = render(status, "redis://127.0.0.1:6379/0", time.time() + 2)
    text = "\n".join(lines)
    assert lines[0] == "PD 10.0.1.11:2379 (cluster 42), broker redis://127.0.0.1:6379/0"
    header = next(line for line in lines if line.startswith("STORE"))
    row1 = next(line for line in lines if line.startswith("1 "))
    assert row1.split()[:6] == ["1", "10.0.1.21:20160", "Up", "online", "0.1.0", "tikv-1/101"]
    assert row1.index("online") == header.index("AGENT")
    assert "http://127.0.0.1:9464/metrics" in row1 and row1.endswith("s3://bkt/prod")
    assert next(line for line in lines if line.startswith("3 ")).endswith("any destination")
    row2 = next(line for line in lines if line.startswith("2 "))
    assert row2.split()[3:] == ["NO", "AGENT", "-", "-", "-", "3", "-", "-"]
    assert "shared queue br.42.storage: 1 waiting" in text and "jobs running or resumable: none" in text
    assert "agent of store 9 unknown to this PD: tikv-9/109/bbbbbbbb" in text
    assert "1 br-agent of other clusters share this broker (cluster 7: stores 2)" in text
    assert lines[-1] == ("store 2 (10.0.1.22:20160) has NO ONLINE br-agent; 3 tasks wait in br.42.store.2: "
                         "start br-agent on the host of 10.0.1.22:20160")
    assert "4 " in text and "Tombstone" in text


def test_running_and_interrupted_jobs(client: fakeredis.FakeRedis) -> None:
    running = JobSpec(kind="backup", cluster_id=42, storage_url="s3://bkt/prod/a", ranges=[m.KeyRange()])
    jobs = JobStore(client, running.job_id())
    jobs.create(running)
    jobs.add_range(RangeRecord(range=m.KeyRange(end=b"\x40")))
    assert Lease(client, jobs.lease_key, token="coord/77/ab").acquire()
    stopped = JobSpec(kind="restore", cluster_id=42, storage_url="s3://bkt/prod/b", ranges=[m.KeyRange()])
    JobStore(client, stopped.job_id()).create(stopped)
    done = JobSpec(kind="backup", cluster_id=42, storage_url="s3://bkt/prod/c", ranges=[m.KeyRange()])
    JobStore(client, done.job_id()).create(done)
    JobStore(client, done.job_id()).finish("done")
    text = "\n".join(render(gather(FakePD(cluster_id=42), client), "redis://r:6379/0", time.time()))
    assert f"job {running.job_id()} backup s3://bkt/prod/a: running (coordinator coord/77/ab), 1 ranges done" in text
    assert f"job {stopped.job_id()} restore s3://bkt/prod/b: interrupted" in text
    assert done.job_id() not in text


def test_age_and_the_verb_is_registered() -> None:
    assert (age(3.21), age(12.4), age(125), age(3725), age(-1)) == ("3.2s", "12s", "2m05s", "1h02m", "0.0s")
    args = parse_args(["fleet", "status", "--pd", "10.0.1.11:2379"])
    assert args.pd == "10.0.1.11:2379" and args.log_level == "warn" and callable(args.func)
