"""Transactions against real PD + store processes with pingcap's own client (tikv-client), each
result checked against an independent model dict: commit/get/scan over several regions, a
conflict (one txn fails, nothing of it visible), a crashed client's locks resolved by a reader,
snapshot reads at old timestamps, reads after a leader transfer (followers got every batch)."""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from br_common.checksum import Checksum
from br_common.kvproto import checksum_pb2, coprocessor_pb2, kvrpcpb_pb2 as pb
from br_common.txn_codec import encode_bytes
from br_devcluster.admin import DevAdmin
from br_devcluster.txn_kv import TxnKV
from tests.integration._store_cluster import Cluster, context_of, running_cluster, txn_commit

tikv_client = pytest.importorskip("tikv_client")
pytestmark = pytest.mark.integration

Model = dict[bytes, bytes]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("txn"), stores=2, regions=1, replicas=2) as running:
        admin = DevAdmin.of(running.pd)
        for split in (b"g", b"p"):  # regions hold engine keys: txn keys split at their encoding
            admin.split_region(encode_bytes(split))
        admin.close()
        yield running


@pytest.fixture(scope="module")
def client(cluster: Cluster):
    return tikv_client.TransactionClient.connect([cluster.pd_proc.address])


def apply(model: Model, writes: dict[bytes, bytes | None]) -> None:
    for key, value in writes.items():
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value


def seen(reader, prefix: bytes) -> Model:  # noqa: ANN001 - a Transaction or a Snapshot
    return dict(reader.scan(prefix, prefix + b"\xff", 10_000))


def test_commit_get_scan_across_regions(client) -> None:  # noqa: ANN001
    model: Model = {}
    batches = [{b"a/%02d" % i: b"v%d" % i for i in range(0, 30, 3)},
               {b"a/%02d" % i: (b"L" * 400 if i % 2 else None) for i in range(0, 30, 6)},
               {b"a/x": b"x", b"a/%02d" % 4: b"four"}]
    for writes in batches:
        txn_commit(client, {b"a" + k[1:]: v for k, v in writes.items()})
        txn_commit(client, {b"m" + k[1:]: v for k, v in writes.items()})  # the same in another region
        txn_commit(client, {b"t" + k[1:]: v for k, v in writes.items()})
        apply(model, writes)
    txn = client.begin()
    for prefix in (b"a", b"m", b"t"):
        expected = {prefix + k[1:]: v for k, v in model.items()}
        assert seen(txn, prefix + b"/") == expected
        for key in [prefix + b"/%02d" % i for i in range(30)]:
            assert txn.get(key) == expected.get(key)
    everything = dict(txn.scan(b"", b"\xff", 10_000))
    assert {k for k in everything if k[:1] in b"amt" and k[1:2] == b"/"} == {
        p + k[1:] for p in (b"a", b"m", b"t") for k in model}
    txn.commit()


def test_conflicting_transactions_one_fails_nothing_half_visible(client) -> None:  # noqa: ANN001
    txn_commit(client, {b"c/k": b"0"})
    first, second = client.begin(), client.begin()
    first.put(b"c/k", b"first")
    first.put(b"n/other", b"first")
    second.put(b"c/k", b"second")
    second.put(b"u/other", b"second")  # in another region than c/k
    second.commit()
    with pytest.raises(Exception, match="WriteConflict"):
        first.commit()
    txn = client.begin()
    assert txn.get(b"c/k") == b"second" and txn.get(b"u/other") == b"second"
    # first's lock on n/other (another region) blocks readers, its value is never visible;
    # once its TTL ran out (client-rust: 3 s) a reader rolls it back
    with pytest.raises(Exception, match="resolve lock"):
        txn.get(b"n/other")
    time.sleep(3.2)
    assert txn.get(b"n/other") is None
    txn.commit()
    first.rollback()


def _prewrite(cluster: Cluster, start_ts: int, primary: bytes, writes: Model, ttl_ms: int) -> None:
    """What a client sends before it crashes: KvPrewrite to each region, no commit."""
    for key, value in writes.items():
        stub, ctx, _ = _route(cluster, key)
        response = stub.KvPrewrite(pb.PrewriteRequest(
            context=ctx, mutations=[pb.Mutation(op=pb.Put, key=key, value=value)], primary_lock=primary,
            start_version=start_ts, lock_ttl=ttl_ms, txn_size=len(writes)))
        assert not response.HasField("region_error") and not response.errors, response


def _route(cluster: Cluster, key: bytes):  # noqa: ANN202
    info = cluster.pd.region(encode_bytes(key))
    return cluster.stub(info.leader_store_id), context_of(info), info


def _commit_primary(cluster: Cluster, start_ts: int, primary: bytes) -> None:
    stub, ctx, _ = _route(cluster, primary)
    response = stub.KvCommit(pb.CommitRequest(context=ctx, start_version=start_ts, keys=[primary],
                                              commit_version=cluster.pd.tso()))
    assert not response.HasField("region_error") and not response.HasField("error"), response


def test_crashed_clients_locks_are_resolved_by_a_reader(cluster: Cluster, client) -> None:  # noqa: ANN001
    txn_commit(client, {b"d/p": b"old", b"q/s": b"old"})
    rolled_back = {b"d/p": b"never", b"q/s": b"never"}
    _prewrite(cluster, cluster.pd.tso(), b"d/p", rolled_back, ttl_ms=50)
    committed = {b"d/p2": b"yes", b"q/s2": b"yes" * 100}
    start = cluster.pd.tso()
    _prewrite(cluster, start, b"d/p2", committed, ttl_ms=50)
    _commit_primary(cluster, start, b"d/p2")  # the client died before committing the secondary
    time.sleep(0.2)  # the TTLs run out
    txn = client.begin()
    assert txn.get(b"q/s") == b"old" and txn.get(b"d/p") == b"old"
    assert txn.get(b"q/s2") == b"yes" * 100 and txn.get(b"d/p2") == b"yes"
    txn.commit()
    stub, ctx, _ = _route(cluster, b"q/")
    locks = stub.KvScanLock(pb.ScanLockRequest(context=ctx, max_version=cluster.pd.tso(), limit=100))
    assert not locks.HasField("region_error") and list(locks.locks) == []


def test_snapshot_reads_at_an_old_ts(client) -> None:  # noqa: ANN001
    history: list[tuple[int, Model]] = []
    model: Model = {}
    for n in range(4):
        writes = {b"s/%d" % i: (b"%d@%d" % (i, n) if (i + n) % 3 else None) for i in range(6)}
        txn_commit(client, writes)
        apply(model, writes)
        history.append((client.current_timestamp(), dict(model)))
    for ts, expected in history:
        snapshot = client.snapshot(ts, False)
        assert seen(snapshot, b"s/") == expected
        assert snapshot.get(b"s/1") == expected.get(b"s/1")


def test_reads_after_a_leader_transfer(cluster: Cluster, client) -> None:  # noqa: ANN001
    writes = {b"f/%d" % i: b"x" * (i * 60) for i in range(1, 8)}
    txn_commit(client, writes)
    info = cluster.pd.region(encode_bytes(b"f/"))
    follower = next(p.store_id for p in info.region.peers if p.store_id != info.leader_store_id)
    DevAdmin.of(cluster.pd).transfer_leader(info.id, follower)
    txn = client.begin()
    assert seen(txn, b"f/") == writes
    txn.commit()


def test_bad_input_is_an_answer_not_a_crash(cluster: Cluster) -> None:
    import grpc
    stub, ctx, _ = _route(cluster, b"z")
    with pytest.raises(grpc.RpcError) as empty_key:
        stub.KvPrewrite(pb.PrewriteRequest(context=ctx, mutations=[pb.Mutation(op=pb.Put, key=b"")],
                                           primary_lock=b"z", start_version=cluster.pd.tso()))
    assert empty_key.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    outside = stub.KvGet(pb.GetRequest(context=ctx, key=b"a", version=cluster.pd.tso()))
    assert outside.region_error.HasField("key_not_in_region")
    unknown = stub.KvCommit(pb.CommitRequest(context=pb.Context(region_id=999_999), keys=[b"z"],
                                             start_version=1, commit_version=2))
    assert unknown.region_error.HasField("region_not_found")
    assert stub.KvGet(pb.GetRequest(context=ctx, key=b"z", version=cluster.pd.tso())).not_found
    inverted = stub.KvScan(pb.ScanRequest(context=ctx, start_key=b"zz", end_key=b"z", limit=10, version=5))
    assert not inverted.HasField("region_error") and list(inverted.pairs) == []
    backwards = stub.KvCommit(pb.CommitRequest(context=ctx, keys=[b"z"], start_version=9, commit_version=9))
    assert "invalid txn tso" in backwards.error.abort
    with pytest.raises(grpc.RpcError) as bad_range:
        stub.KvDeleteRange(pb.DeleteRangeRequest(context=ctx, start_key=b"zz", end_key=b"z"))
    assert bad_range.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    data = checksum_pb2.ChecksumRequest().SerializeToString()
    not_checksum = stub.Coprocessor(coprocessor_pb2.Request(context=ctx, tp=103, data=data, start_ts=5))
    assert "unsupported" in not_checksum.other_error
    garbage = stub.Coprocessor(coprocessor_pb2.Request(context=ctx, tp=105, data=b"\xff\xff", start_ts=5))
    assert "ChecksumRequest" in garbage.other_error
    outside_range = stub.Coprocessor(coprocessor_pb2.Request(
        context=ctx, tp=105, data=data, start_ts=5, ranges=[coprocessor_pb2.KeyRange(start=b"a", end=b"b")]))
    assert outside_range.region_error.HasField("key_not_in_region")


def test_coprocessor_checksum_at_a_ts_matches_the_model(cluster: Cluster, client) -> None:  # noqa: ANN001
    """The devcluster's own txn client (load --txn) and the Coprocessor checksum (checksum --txn)."""
    with TxnKV(cluster.pd) as kv:
        first = [(b"k/%03d" % i, b"v" * (i * 7)) for i in range(60)]  # long values too
        kv.commit(first)
        at_first = client.current_timestamp()
        txn_commit(client, {b"k/%03d" % i: None for i in range(0, 60, 4)} | {b"k/new": b"n"})
        model = dict(first)
        apply(model, {b"k/%03d" % i: None for i in range(0, 60, 4)} | {b"k/new": b"n"})
        assert kv.checksum_at(b"k/", b"k0", at_first) == Checksum().add_pairs(first)
        assert kv.checksum_at(b"k/", b"k0", cluster.pd.tso()) == Checksum().add_pairs(sorted(model.items()))
        txn = client.begin()
        everything = sorted(dict(txn.scan(b"", b"\xff" * 8, 100_000)).items())
        txn.rollback()
        assert kv.checksum_at(b"", b"", cluster.pd.tso()) == Checksum().add_pairs(everything)


def test_a_split_between_prewrite_and_commit(cluster: Cluster, client) -> None:  # noqa: ANN001
    """Splits change metadata only: the locks stay, a commit routed to the new regions finds them."""
    writes = {b"w/1": b"one", b"w/5": b"five"}
    start = cluster.pd.tso()
    _prewrite(cluster, start, b"w/1", writes, ttl_ms=60_000)
    before = _route(cluster, b"w/5")[2]
    with DevAdmin.of(cluster.pd) as admin:
        admin.split_region(encode_bytes(b"w/3"))
    commit_ts = cluster.pd.tso()

    def commit_key(key: bytes, info) -> pb.CommitResponse:  # noqa: ANN001
        return cluster.stub(info.leader_store_id).KvCommit(pb.CommitRequest(
            context=context_of(info), start_version=start, keys=[key], commit_version=commit_ts))

    assert commit_key(b"w/5", before).region_error.HasField("epoch_not_match")  # the client's stale view
    for key in writes:  # primary first
        done = commit_key(key, _route(cluster, key)[2])
        assert not done.HasField("region_error") and not done.HasField("error"), done
    txn = client.begin()
    assert seen(txn, b"w/") == writes
    txn.commit()
