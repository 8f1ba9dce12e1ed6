"""Agent registry on fakeredis: publish/expire/withdraw, instance identity, destinations."""
from __future__ import annotations

import fakeredis

from br_common.fleet.registry import AgentInfo, Registry


def _info(store_id: int = 1, pid: int = 10, **fields: object) -> AgentInfo:
    fields.setdefault("cluster_id", 5)
    return AgentInfo(store_id=store_id, store_address=f"127.0.0.1:{2000 + store_id}", hostname="h", pid=pid,
                     boot_id="b" * 36, version="1", **fields)


def test_publish_lookup_withdraw() -> None:
    reg = Registry(fakeredis.FakeRedis())
    reg.publish(_info(1), ttl=15)
    reg.publish(_info(2, pid=11), ttl=15)
    assert [a.store_id for a in reg.alive()] == [1, 2]
    assert reg.for_store(5, 2)[0].pid == 11 and reg.for_store(5, 2)[0].last_seen > 0
    assert reg.instance_alive(_info(1).instance)
    reg.withdraw(_info(1))
    assert reg.for_store(5, 1) == [] and not reg.instance_alive(_info(1).instance)


def test_a_restarted_agent_is_a_new_instance() -> None:
    assert _info(pid=10).instance != _info(pid=11).instance


def test_destinations() -> None:  # the rules themselves: test_fleet_destinations.py
    assert _info().allows("s3://any/where")
    assert _info(allowed_destinations=["s3://bkt/a"]).allows("s3://bkt/a/x")
    assert not _info(allowed_destinations=["s3://bkt/a"]).allows("s3://cbk/a")


def test_a_restart_on_the_same_host_supersedes_the_old_instance_at_once() -> None:
    reg = Registry(fakeredis.FakeRedis())
    reg.publish(_info(1, pid=10, started=1.0), ttl=15)
    reg.publish(_info(1, pid=11, started=2.0), ttl=15)
    reg.publish(_info(2, pid=12, started=0.5), ttl=15)
    assert [(a.store_id, a.pid) for a in reg.alive()] == [(1, 11), (2, 12)]


def test_lookups_see_only_the_agents_of_one_cluster() -> None:
    """Store ids repeat across clusters: store 1 of cluster 5 and store 1 of cluster 6 on one host
    are two agents, neither supersedes the other, and each coordinator sees only its own."""
    reg = Registry(fakeredis.FakeRedis())
    reg.publish(_info(1, pid=10, started=1.0, cluster_id=5), ttl=15)
    reg.publish(_info(1, pid=20, started=2.0, cluster_id=6), ttl=15)
    assert [(a.cluster_id, a.pid) for a in reg.alive()] == [(5, 10), (6, 20)]
    assert [a.pid for a in reg.alive(5)] == [10] and [a.pid for a in reg.for_store(6, 1)] == [20]
    assert reg.for_store(7, 1) == []
