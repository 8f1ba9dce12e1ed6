"""Backup SSTs from one devcluster, ingest them into an empty one with another layout."""
from __future__ import annotations


import grpc
import pytest

from br_common.grpc_util import channel_options
from br_common.kvproto import (brpb_pb2, brpb_pb2_grpc)
from br_devcluster.load import KeyGen, LoadSpec
from br_devcluster.admin import DevAdmin
from tests.integration.test_backup_support import restore_files

pytestmark = pytest.mark.integration


def _backup(dc, root, end_version: int) -> list[brpb_pb2.File]:
    """Ask every store to back up the whole key space; keep the files of the regions it leads."""
    files, covered = [], []
    local = brpb_pb2.StorageBackend(local=brpb_pb2.Local(path=str(root)))
    for address in dc.store_addresses().values():
        stub = brpb_pb2_grpc.BackupStub(grpc.insecure_channel(address, options=channel_options()))
        request = brpb_pb2.BackupRequest(cluster_id=dc.cluster_id, end_version=end_version, storage_backend=local,
                                         is_raw_kv=True, cf="default", compression_type=brpb_pb2.ZSTD)
        for answer in stub.backup(request, timeout=60):
            if answer.HasField("error"):
                assert answer.error.HasField("region_error"), answer.error.msg  # led elsewhere
                continue
            files.extend(answer.files)
            covered.append((answer.start_key, answer.end_key))
    covered.sort()
    assert covered[0][0] == b"" and covered[-1][1] == b""  # every region backed up exactly once
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:]))
    return sorted(files, key=lambda f: f.start_key)


def test_backup_then_restore_into_other_layout_gives_same_checksum(devcluster_factory, tmp_path):
    source = devcluster_factory(stores=3, replicas=1, regions=8)
    gen = KeyGen(LoadSpec(keys=3000, value_size=64, seed=5))
    source.kv.batch_put(gen.pairs(0, 3000))
    end_version = source.pd.tso()  # raw KV is API V1: the backup reads the current data
    expected = source.kv.checksum()
    assert expected == gen.checksum()

    files = _backup(source, tmp_path, end_version)
    assert sum(f.total_kvs for f in files) == 3000
    assert all((tmp_path / f.name).is_file() and f.sha256 for f in files)

    target = devcluster_factory(stores=2, replicas=2, regions=2)  # 0x8000 is also a source boundary
    assert target.kv.checksum().total_kvs == 0
    restore_files(target, tmp_path, files, exact_regions=True)
    assert target.kv.checksum() == expected
    key = gen.key(1)
    assert target.kv.get(key) == gen.value(1)
    # every replica got the data: move every leader, checksum again
    for info in list(target.pd.scan_regions()):
        other = next(p.store_id for p in info.region.peers if p.store_id != info.leader_store_id)
        DevAdmin.of(target.pd).transfer_leader(info.id, other)
    assert target.kv.checksum() == expected
