"""Backup to a local dir from one cluster, Download + MultiIngest into a fresh one, same checksum;
and the error answers of backup, Download and Ingest."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from br_common.checksum import Checksum
from br_common.data_keys import data_key
from br_common.kvproto import brpb_pb2, brpb_pb2_grpc, import_sstpb_pb2, import_sstpb_pb2_grpc
from br_common.pd_client import RegionInfo
from br_devcluster.store.sstfiles import SstBuilder, sst_options
from br_devcluster.admin import DevAdmin
from tests.integration._store_cluster import Cluster, context_of, running_cluster

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024 * 1024  # bytes/s: exercises the limiters without slowing the test
KEYS = [bytes([i, j]) + b"-key" for i in range(0, 256, 16) for j in (0, 7, 255)]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """2 stores, 4 regions; every key written twice, some deleted."""
    with running_cluster(tmp_path_factory.mktemp("source"), stores=2, regions=4) as running:
        for key in KEYS:
            running.put(key, b"old")
            running.put(key, key * 3)
        for key in KEYS[::5]:
            running.delete(key)
        yield running


def backup_request(cluster: Cluster, path: Path, ts: int, **fields) -> brpb_pb2.BackupRequest:  # noqa: ANN003
    fields = {"cluster_id": cluster.pd.cluster_id, "start_key": b"", "end_key": b"", "is_raw_kv": True, **fields}
    return brpb_pb2.BackupRequest(end_version=ts, compression_type=brpb_pb2.ZSTD,
                                  storage_backend=brpb_pb2.StorageBackend(local=brpb_pb2.Local(path=str(path))),
                                  **fields)


def backup_stub(cluster: Cluster, store_id: int) -> brpb_pb2_grpc.BackupStub:
    return brpb_pb2_grpc.BackupStub(cluster.channel(cluster.pd.store(store_id).address))


def import_stub(cluster: Cluster, store_id: int) -> import_sstpb_pb2_grpc.ImportSSTStub:
    return import_sstpb_pb2_grpc.ImportSSTStub(cluster.channel(cluster.pd.store(store_id).address))


def run_backup(cluster: Cluster, path: Path, ts: int) -> list[brpb_pb2.File]:
    """Ask every store for everything; keep the files, check the NotLeader answers cover the rest."""
    files, covered = [], []
    for store in cluster.pd.stores():
        request = backup_request(cluster, path, ts, rate_limit=LIMIT)
        for response in backup_stub(cluster, store.id).backup(request):
            if response.HasField("error"):
                assert response.error.region_error.not_leader.leader.store_id not in (0, store.id)
            else:
                files += response.files
                covered.append((response.start_key, response.end_key))
    assert sorted(covered) == sorted((i.region.start_key, i.region.end_key) for i in cluster.pd.scan_regions())
    return files


def restore(cluster: Cluster, path: Path, files: list[brpb_pb2.File]) -> None:
    """Every peer downloads each file, then the leader ingests the region's files at once."""
    by_region: dict[int, tuple[RegionInfo, list[import_sstpb_pb2.SSTMeta]]] = {}
    for store in cluster.pd.stores():
        import_stub(cluster, store.id).SetDownloadSpeedLimit(import_sstpb_pb2.SetDownloadSpeedLimitRequest(
            speed_limit=LIMIT))
    for f in files:
        info = cluster.pd.region(f.start_key)
        meta = import_sstpb_pb2.SSTMeta(uuid=uuid.uuid4().bytes, cf_name="default", region_id=info.id,
                                        region_epoch=info.region.region_epoch, end_key_exclusive=True,
                                        range=import_sstpb_pb2.Range(start=f.start_key, end=f.end_key))
        for peer in info.region.peers:
            response = import_stub(cluster, peer.store_id).Download(import_sstpb_pb2.DownloadRequest(
                sst=meta, name=f.name, storage_backend=brpb_pb2.StorageBackend(local=brpb_pb2.Local(path=str(path))),
                is_raw_kv=True))
            assert not response.HasField("error"), response.error
            assert response.ssts[0].total_kvs == f.total_kvs
        by_region.setdefault(info.id, (info, []))[1].append(meta)
    for info, metas in by_region.values():
        response = import_stub(cluster, info.leader_store_id).MultiIngest(
            import_sstpb_pb2.MultiIngestRequest(context=context_of(info), ssts=metas))
        assert not response.HasField("error"), response.error


def test_backup_then_restore_gives_the_same_checksum(source: Cluster, tmp_path: Path,
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    source.put(KEYS[1], b"rewritten")  # raw V1 backup reads the current data, whatever backup_ts says
    ts = source.pd.tso()
    files = run_backup(source, tmp_path / "backup", ts)
    expected = source.checksum()
    total = Checksum()
    for f in files:
        total = total.merge(Checksum(crc64xor=f.crc64xor, total_kvs=f.total_kvs, total_bytes=f.total_bytes))
        assert (tmp_path / "backup" / f.name).stat().st_size == f.size
    assert (total.crc64xor, total.total_kvs, total.total_bytes) == expected
    assert expected[1] == len(KEYS) - len(KEYS[::5])
    with running_cluster(tmp_path_factory.mktemp("target"), stores=2, regions=1, replicas=2) as target:
        restore(target, tmp_path / "backup", files)
        assert target.checksum() == expected
        assert target.get(KEYS[1]) == b"rewritten"
        info = target.pd.region(b"")
        follower = next(p.store_id for p in info.region.peers if p.store_id != info.leader_store_id)
        DevAdmin.of(target.pd).transfer_leader(info.id, follower)  # the follower ingested its own copy
        assert target.checksum() == expected


def test_backup_errors(source: Cluster, tmp_path: Path) -> None:
    store_id = source.pd.stores()[0].id
    stub = backup_stub(source, store_id)
    ts = source.pd.tso()
    [wrong_cluster] = stub.backup(backup_request(source, tmp_path, ts, cluster_id=source.pd.cluster_id + 1))
    assert wrong_cluster.error.cluster_id_error.current == source.pd.cluster_id
    s3 = backup_request(source, tmp_path, ts)
    s3.storage_backend.CopyFrom(brpb_pb2.StorageBackend(s3=brpb_pb2.S3(bucket="b")))
    [not_local] = stub.backup(s3)
    assert "local" in not_local.error.msg
    [inverted] = stub.backup(backup_request(source, tmp_path, ts, start_key=b"b", end_key=b"a"))
    assert inverted.error.msg
    [write_cf] = stub.backup(backup_request(source, tmp_path, ts, cf="write"))
    assert "column family" in write_cf.error.msg
    leader = source.pd.region(b"\x00").leader_store_id
    empty = list(backup_stub(source, leader).backup(
        backup_request(source, tmp_path, ts, start_key=b"\x00\x01zz", end_key=b"\x00\x02")))
    assert len(empty) == 1 and (empty[0].start_key, empty[0].end_key) == (b"\x00\x01zz", b"\x00\x02")
    assert not empty[0].files and not empty[0].HasField("error")


def test_download_and_ingest_errors(source: Cluster, tmp_path: Path) -> None:
    files = run_backup(source, tmp_path / "b", source.pd.tso())
    f = next(f for f in files if f.total_kvs > 1)
    info = source.pd.region(f.start_key)
    stub = import_stub(source, info.leader_store_id)
    local = brpb_pb2.StorageBackend(local=brpb_pb2.Local(path=str(tmp_path / "b")))

    def download(name: str, start: bytes, end: bytes, **rule) -> import_sstpb_pb2.DownloadResponse:  # noqa: ANN003
        meta = import_sstpb_pb2.SSTMeta(uuid=b"u" * 16, range=import_sstpb_pb2.Range(start=start, end=end))
        return stub.Download(import_sstpb_pb2.DownloadRequest(
            sst=meta, name=name, storage_backend=local, rewrite_rule=import_sstpb_pb2.RewriteRule(**rule)))

    assert "not found" in download("1/missing.sst", b"", b"").error.message
    (tmp_path / "b" / "junk.sst").write_bytes(b"junk" * 100)
    assert "cannot read SST" in download("junk.sst", b"", b"").error.message
    below = download(f.name, f.end_key, b"")  # every key lies below the range: nothing staged, as TiKV does
    assert not below.HasField("error") and below.is_empty
    assert "old prefix" in download(f.name, b"", b"", old_key_prefix=b"\xee\xee").error.message
    ingest = stub.Ingest(import_sstpb_pb2.IngestRequest(
        context=context_of(info), sst=import_sstpb_pb2.SSTMeta(uuid=b"never downloaded")))
    assert "Download it first" in ingest.error.message
    ok = download(f.name, b"", b"")
    assert not ok.HasField("error") and not ok.is_empty and ok.ssts[0].total_kvs == f.total_kvs
    other = next(i for i in source.pd.scan_regions() if i.id != info.id)
    ingest = stub.Ingest(import_sstpb_pb2.IngestRequest(context=context_of(other), sst=ok.ssts[0]))
    # a region this store leads not (NotLeader) or holds no peer of (RegionNotFound, as TiKV), or
    # whose range the SST is not in (KeyNotInRegion)
    assert any(ingest.error.HasField(f) for f in ("not_leader", "region_not_found", "key_not_in_region"))


def test_rewrite_and_new_timestamp(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keys t1_* of a raw SST are restored as t22_* (prefix swap); new_timestamp replaces the last
    8 bytes of every key, as TiKV's importer does (truncate_ts + append_ts): a raw key too short to
    carry a ts is refused, which is why the agent never sends it for V1 raw data."""
    builder = SstBuilder(tmp_path / "b" / "t1.sst", sst_options())
    for i in range(10):
        builder.add(data_key(b"t1_%d" % i), b"v%d" % i)
    builder.finish()
    local = brpb_pb2.StorageBackend(local=brpb_pb2.Local(path=str(tmp_path / "b")))
    with running_cluster(tmp_path_factory.mktemp("rewrite"), stores=1, regions=1) as target:
        info = target.pd.region(b"")
        stub = import_stub(target, info.leader_store_id)
        ts = target.pd.tso()
        meta = import_sstpb_pb2.SSTMeta(uuid=uuid.uuid4().bytes, end_key_exclusive=True,
                                        range=import_sstpb_pb2.Range(start=b"t22_", end=b"t22`"))
        stamped = import_sstpb_pb2.RewriteRule(old_key_prefix=b"t1_", new_key_prefix=b"t22_", new_timestamp=ts)
        refused = stub.Download(import_sstpb_pb2.DownloadRequest(sst=meta, name="t1.sst", rewrite_rule=stamped,
                                                                 storage_backend=local))
        assert "too short to carry a timestamp" in refused.error.message
        rule = import_sstpb_pb2.RewriteRule(old_key_prefix=b"t1_", new_key_prefix=b"t22_")
        request = import_sstpb_pb2.DownloadRequest(sst=meta, name="t1.sst", rewrite_rule=rule, storage_backend=local)
        response = stub.Download(request)
        assert not response.HasField("error"), response.error
        assert (response.range.start, response.range.end) == (b"t22_0", b"t22_9")
        response = stub.Download(request)  # again: replaces the staged file
        assert not response.HasField("error"), response.error
        ingest = stub.MultiIngest(import_sstpb_pb2.MultiIngestRequest(context=context_of(info), ssts=response.ssts))
        assert not ingest.HasField("error"), ingest.error
        assert target.get(b"t22_7") == b"v7"
        assert target.get(b"t1_7") is None


def test_import_mode_is_remembered(source: Cluster) -> None:
    stub = import_stub(source, source.pd.stores()[0].id)
    assert stub.GetMode(import_sstpb_pb2.GetModeRequest()).mode == import_sstpb_pb2.Normal
    stub.SwitchMode(import_sstpb_pb2.SwitchModeRequest(mode=import_sstpb_pb2.Import))
    assert stub.GetMode(import_sstpb_pb2.GetModeRequest()).mode == import_sstpb_pb2.Import
    stub.SwitchMode(import_sstpb_pb2.SwitchModeRequest(mode=import_sstpb_pb2.Normal))
    assert stub.GetMode(import_sstpb_pb2.GetModeRequest()).mode == import_sstpb_pb2.Normal
