"""The store's Backup RPC for a transactional backup (is_raw_kv=false), against real PD + store
processes written by pingcap's TransactionClient: files as TiKV lays them out, their counters
equal to the Coprocessor checksum at backup_ts, and a live lock answered as kv_error.locked."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from br_common.checksum import Checksum
from br_common.kvproto import brpb_pb2, brpb_pb2_grpc, kvrpcpb_pb2 as pb
from br_common.txn_codec import encode_bytes
from br_devcluster.admin import DevAdmin
from br_devcluster.txn_kv import TxnKV
from tests.integration._store_cluster import Cluster, context_of, running_cluster, txn_commit

tikv_client = pytest.importorskip("tikv_client")
pytestmark = pytest.mark.integration

VALUES = {b"k/empty": b"", b"k/255": b"s" * 255, b"k/256": b"l" * 256, b"m/1mib": b"M" * (1 << 20),
          b"m/short": b"x", b"z/gone": b"soon deleted"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("txnbackup"), stores=2, regions=1, replicas=1) as running:
        admin = DevAdmin.of(running.pd)
        for split in (b"m", b"t"):
            admin.split_region(encode_bytes(split))
        admin.close()
        client = tikv_client.TransactionClient.connect([running.pd_proc.address])
        txn_commit(client, VALUES)
        txn_commit(client, {b"z/gone": None, b"k/255": b"t" * 255})
        yield running


def backup(cluster: Cluster, path: Path, ts: int, **fields) -> list[brpb_pb2.BackupResponse]:  # noqa: ANN003
    out = []
    for store in cluster.pd.stores():
        stub = brpb_pb2_grpc.BackupStub(cluster.channel(store.address))
        request = brpb_pb2.BackupRequest(
            cluster_id=cluster.pd.cluster_id, end_version=ts, is_raw_kv=False, compression_type=brpb_pb2.ZSTD,
            storage_backend=brpb_pb2.StorageBackend(local=brpb_pb2.Local(path=str(path))), **fields)
        out += list(stub.backup(request))
    return out


def test_txn_backup_files_match_the_coprocessor_checksum(cluster: Cluster, tmp_path: Path) -> None:
    ts = cluster.pd.tso()
    responses = backup(cluster, tmp_path, ts)
    ok = [r for r in responses if not r.HasField("error")]
    assert all(r.error.HasField("region_error") for r in responses if r.HasField("error"))
    assert sorted((r.start_key, r.end_key) for r in ok) == [(b"", b"m"), (b"m", b"t"), (b"t", b"")]
    files = [f for r in ok for f in r.files]
    assert {f.cf for f in files} == {"default", "write"}
    for f in files:
        assert f.name.endswith(f"_{f.cf}.sst") and (tmp_path / f.name).stat().st_size == f.size
        assert (f.start_version, f.end_version) == (0, ts)
    total = Checksum()
    for f in files:
        total = total.merge(Checksum(crc64xor=f.crc64xor, total_kvs=f.total_kvs, total_bytes=f.total_bytes))
    expected = {k: v for k, v in VALUES.items() if k != b"z/gone"} | {b"k/255": b"t" * 255}
    assert total == Checksum().add_pairs(expected.items())
    with TxnKV(cluster.pd) as kv:
        assert kv.checksum_at(b"", b"", ts) == total


def test_txn_backup_of_a_sub_range_uses_raw_keys(cluster: Cluster, tmp_path: Path) -> None:
    responses = backup(cluster, tmp_path, cluster.pd.tso(), start_key=b"k/256", end_key=b"m/short")
    ok = [r for r in responses if not r.HasField("error")]
    assert sorted((r.start_key, r.end_key) for r in ok) == [(b"k/256", b"m"), (b"m", b"m/short")]
    assert sum(f.total_kvs for r in ok for f in r.files) == 3  # k/256, k/empty and m/1mib


def test_a_live_lock_answers_kv_error_locked(cluster: Cluster, tmp_path: Path) -> None:
    start = cluster.pd.tso()
    info = cluster.pd.region(encode_bytes(b"t/locked"))
    stub = cluster.stub(info.leader_store_id)
    prewrite = stub.KvPrewrite(pb.PrewriteRequest(
        context=context_of(info), mutations=[pb.Mutation(op=pb.Put, key=b"t/locked", value=b"v")],
        primary_lock=b"t/locked", start_version=start, lock_ttl=60_000))
    assert not prewrite.errors
    responses = backup(cluster, tmp_path, cluster.pd.tso(), start_key=b"t")
    [locked] = [r for r in responses if r.error.HasField("kv_error")]
    assert locked.error.kv_error.locked.lock_version == start and locked.error.kv_error.locked.key == b"t/locked"
    stub.KvBatchRollback(pb.BatchRollbackRequest(context=context_of(info), keys=[b"t/locked"], start_version=start))
    assert not any(r.HasField("error") and not r.error.HasField("region_error")
                   for r in backup(cluster, tmp_path, cluster.pd.tso(), start_key=b"t"))
