"""br_common.lock_resolver against real PD + store processes: a crashed client's locks are
committed or rolled back through their primary, a live txn's lock is left alone with its wait."""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.lock_resolver import LockResolver
from br_common.txn_codec import encode_bytes
from br_devcluster.admin import DevAdmin
from tests.integration._store_cluster import Cluster, context_of, running_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("locks"), stores=2, regions=1, replicas=2) as running:
        admin = DevAdmin.of(running.pd)
        admin.split_region(encode_bytes(b"m"))
        admin.close()
        yield running


def prewrite(cluster: Cluster, start: int, primary: bytes, keys: list[bytes], ttl_ms: int) -> None:
    for key in keys:
        info = cluster.pd.region(encode_bytes(key))
        response = cluster.stub(info.leader_store_id).KvPrewrite(pb.PrewriteRequest(
            context=context_of(info), mutations=[pb.Mutation(op=pb.Put, key=key, value=b"v-" + key)],
            primary_lock=primary, start_version=start, lock_ttl=ttl_ms))
        assert not response.errors, response


def commit(cluster: Cluster, start: int, key: bytes) -> int:
    info = cluster.pd.region(encode_bytes(key))
    commit_ts = cluster.pd.tso()
    response = cluster.stub(info.leader_store_id).KvCommit(pb.CommitRequest(
        context=context_of(info), keys=[key], start_version=start, commit_version=commit_ts))
    assert not response.HasField("error")
    return commit_ts


def read(cluster: Cluster, key: bytes) -> pb.GetResponse:
    info = cluster.pd.region(encode_bytes(key))
    return cluster.stub(info.leader_store_id).KvGet(pb.GetRequest(context=context_of(info), key=key,
                                                                  version=cluster.pd.tso()))


def lock_of(cluster: Cluster, key: bytes) -> pb.LockInfo:
    response = read(cluster, key)
    assert response.error.HasField("locked"), response
    return response.error.locked


def test_an_expired_txn_is_rolled_back(cluster: Cluster) -> None:
    start = cluster.pd.tso()
    prewrite(cluster, start, b"a/p", [b"a/p", b"z/s"], ttl_ms=50)
    time.sleep(0.2)
    with LockResolver(cluster.pd) as resolver:
        outcome = resolver.resolve(lock_of(cluster, b"z/s"), cluster.pd.tso())
    assert outcome.resolved and "rolled back" in outcome.detail
    assert read(cluster, b"z/s").not_found


def test_a_committed_primary_commits_the_secondary(cluster: Cluster) -> None:
    start = cluster.pd.tso()
    prewrite(cluster, start, b"b/p", [b"b/p", b"y/s"], ttl_ms=50)
    commit_ts = commit(cluster, start, b"b/p")  # the client died before committing y/s
    with LockResolver(cluster.pd) as resolver:
        outcome = resolver.resolve(lock_of(cluster, b"y/s"), cluster.pd.tso())
    assert outcome.resolved and f"committed at {commit_ts}" in outcome.detail
    assert read(cluster, b"y/s").value == b"v-y/s"


def test_a_live_txn_is_waited_on(cluster: Cluster) -> None:
    start = cluster.pd.tso()
    prewrite(cluster, start, b"c/p", [b"c/p", b"x/s"], ttl_ms=60_000)
    with LockResolver(cluster.pd) as resolver:
        outcome = resolver.resolve(lock_of(cluster, b"x/s"), cluster.pd.tso())
    assert not outcome.resolved and 50_000 < outcome.wait_ms <= 60_000
    assert read(cluster, b"x/s").error.HasField("locked")  # untouched


def async_prewrite(cluster: Cluster, start: int, primary: bytes, secondaries: list[bytes], keys: list[bytes],
                   ttl_ms: int) -> int:
    """A client's async-commit prewrite of keys (one request per key): the largest min_commit_ts."""
    min_commit_ts = 0
    for key in keys:
        info = cluster.pd.region(encode_bytes(key))
        response = cluster.stub(info.leader_store_id).KvPrewrite(pb.PrewriteRequest(
            context=context_of(info), mutations=[pb.Mutation(op=pb.Put, key=key, value=b"v-" + key)],
            primary_lock=primary, start_version=start, lock_ttl=ttl_ms, use_async_commit=True,
            secondaries=secondaries))
        assert not response.errors and response.min_commit_ts > start, response
        min_commit_ts = max(min_commit_ts, response.min_commit_ts)
    return min_commit_ts


def read_at(cluster: Cluster, key: bytes) -> int:
    """A read at a fresh ts on the key's leader: its ts."""
    read_ts = cluster.pd.tso()
    info = cluster.pd.region(encode_bytes(key))
    cluster.stub(info.leader_store_id).KvGet(pb.GetRequest(context=context_of(info), key=key, version=read_ts))
    return read_ts


def test_an_async_commit_prewrite_commits_above_earlier_reads(cluster: Cluster) -> None:
    """The store's max ts: a read at ts (of any key it leads) puts min_commit_ts right above ts."""
    async_prewrite(cluster, cluster.pd.tso(), b"e/p0", [], [b"e/p0"], ttl_ms=50)  # the leader syncs with PD
    start = cluster.pd.tso()
    read_ts = read_at(cluster, b"e/r")
    assert async_prewrite(cluster, start, b"e/p", [], [b"e/p"], ttl_ms=50) == read_ts + 1


def test_an_expired_async_commit_txn_with_every_lock_is_committed(cluster: Cluster) -> None:
    """Its client may have told its user it committed: at the largest min_commit_ts, everywhere."""
    start = cluster.pd.tso()
    secondaries = [b"d/s", b"w/s"]
    commit_ts = async_prewrite(cluster, start, b"d/p", secondaries, [b"d/p", *secondaries], ttl_ms=50)
    time.sleep(0.2)
    with LockResolver(cluster.pd) as resolver:
        outcome = resolver.resolve(lock_of(cluster, b"w/s"), cluster.pd.tso())
    assert outcome.resolved and f"async commit, committed at {commit_ts}" in outcome.detail
    for key in (b"d/p", *secondaries):
        assert read(cluster, key).value == b"v-" + key


def test_an_expired_async_commit_txn_missing_a_secondary_is_rolled_back(cluster: Cluster) -> None:
    """A secondary never prewritten: CheckSecondaryLocks leaves a protected rollback there (its
    late prewrite fails) and every lock of the txn is rolled back."""
    start = cluster.pd.tso()
    secondaries = [b"f/s", b"v/s", b"u/s"]
    async_prewrite(cluster, start, b"f/p", secondaries, [b"f/p", b"f/s", b"v/s"], ttl_ms=50)
    time.sleep(0.2)
    with LockResolver(cluster.pd) as resolver:
        outcome = resolver.resolve(lock_of(cluster, b"f/s"), cluster.pd.tso())
    assert outcome.resolved and "async commit, rolled back" in outcome.detail
    for key in (b"f/p", b"f/s", b"v/s"):
        assert read(cluster, key).not_found
    info = cluster.pd.region(encode_bytes(b"u/s"))
    late = cluster.stub(info.leader_store_id).KvPrewrite(pb.PrewriteRequest(
        context=context_of(info), mutations=[pb.Mutation(op=pb.Put, key=b"u/s", value=b"late")],
        primary_lock=b"f/p", start_version=start, lock_ttl=50, use_async_commit=True))
    assert late.errors[0].conflict.reason == pb.WriteConflict.SelfRolledBack


def test_a_live_async_commit_txn_is_waited_on(cluster: Cluster) -> None:
    start = cluster.pd.tso()
    async_prewrite(cluster, start, b"g/p", [b"t/s"], [b"g/p", b"t/s"], ttl_ms=60_000)
    with LockResolver(cluster.pd) as resolver:
        outcome = resolver.resolve(lock_of(cluster, b"t/s"), cluster.pd.tso())
    assert not outcome.resolved and 50_000 < outcome.wait_ms <= 60_000 and "async commit" in outcome.detail
    assert read(cluster, b"t/s").error.locked.use_async_commit  # untouched


def test_a_new_leader_commits_above_the_reads_its_predecessor_served(cluster: Cluster) -> None:
    """TiKV raises a new leader's max ts to a PD ts before it takes async commits; both ways."""
    admin = DevAdmin.of(cluster.pd)
    try:
        for round_trip in range(2):
            info = cluster.pd.region(encode_bytes(b"h/r"))
            other = next(p.store_id for p in info.region.peers if p.store_id != info.leader_store_id)
            start = cluster.pd.tso()
            read_ts = read_at(cluster, b"h/r")  # served by the leader about to hand over
            admin.transfer_leader(info.id, other)
            key = b"h/p%d" % round_trip
            assert async_prewrite(cluster, start, key, [], [key], ttl_ms=50) > read_ts
    finally:
        admin.close()
