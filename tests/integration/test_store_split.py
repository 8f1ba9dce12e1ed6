"""Regions split by size: a one-region cluster with a 64 KiB region-split-size, loaded through
pingcap's own clients (RawClient and TransactionClient) while leaders move, ends with many regions; every region
boundary is a user-key boundary (a raw key, or an encoded txn key without ts); every key still
reads back as the model dict says, through clients with a fresh region cache.

Every bound must be an encoded key: the TransactionClient decodes region bounds and fails
("invalid key padding") on one that is not, e.g. a raw key."""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from br_common.pd_client import PDError
from br_common.txn_codec import CodecError, decode_bytes
from br_devcluster.admin import DevAdmin
from tests.integration._store_cluster import Cluster, running_cluster, txn_commit

tikv_client = pytest.importorskip("tikv_client")
pytestmark = pytest.mark.integration

SPLIT_SIZE = 64 * 1024
SETTLED_SECONDS = 2.0  # ten split-check passes without a split
Model = dict[bytes, bytes]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    flags = ("--region-split-size", "64KiB", "--split-check-interval", "0.2")
    with running_cluster(tmp_path_factory.mktemp("split"), stores=2, regions=1, replicas=2,
                         store_flags=flags) as running:
        yield running


def region_starts(cluster: Cluster) -> list[bytes]:
    return [info.region.start_key for info in cluster.pd.scan_regions()][1:]


def wait_settled(cluster: Cluster, timeout: float = 60.0) -> list[bytes]:
    """The region boundaries once no split happened for SETTLED_SECONDS."""
    deadline = time.monotonic() + timeout
    starts = region_starts(cluster)
    while time.monotonic() < deadline:
        time.sleep(SETTLED_SECONDS)
        now = region_starts(cluster)
        if now == starts:
            return starts
        starts = now
    raise AssertionError("regions kept splitting")


def load(cluster: Cluster) -> tuple[Model, Model]:
    """Raw and transactional data in small batches (splits happen while it loads); some txn keys
    get several versions, large values (default CF) and small ones (inline in write)."""
    raw = tikv_client.RawClient.connect([cluster.pd_proc.address])
    txn = tikv_client.TransactionClient.connect([cluster.pd_proc.address])
    raw_model: Model = {}
    txn_model: Model = {}
    for batch in range(20):
        if batch % 5 == 4:
            move_leaders(cluster)
        pairs = {b"raw/%05d" % (batch * 20 + i): bytes([batch]) * 1000 for i in range(20)}
        raw.batch_put(pairs)
        raw_model.update(pairs)
        writes = {b"txn/%05d" % (i * 7 % 200): bytes([batch]) * (600 if i % 2 else 100) for i in range(20 * batch,
                                                                                                       20 * batch + 20)}
        txn_commit(txn, writes)
        txn_model.update(writes)
    return raw_model, txn_model


def move_leaders(cluster: Cluster) -> None:
    """Every region's leader to the other store: the new leader checks (and splits) it from then on.
    A region its store splits meanwhile refuses the move (epoch changed), as PD does: skipped."""
    with DevAdmin.of(cluster.pd) as admin:
        for info in cluster.pd.scan_regions():
            other = next(p.store_id for p in info.region.peers if p.store_id != info.leader_store_id)
            try:
                admin.transfer_leader(info.id, other)
            except PDError as exc:
                if "epoch changed" not in str(exc):
                    raise


def is_encoded_user_key(key: bytes) -> bool:
    """An encoded user key without ts: never between two versions of one txn key."""
    try:
        return decode_bytes(key)[1] == b""
    except CodecError:
        return False


def test_loads_split_the_region_and_every_key_reads_back(cluster: Cluster) -> None:
    raw_model, txn_model = load(cluster)
    starts = wait_settled(cluster)
    assert len(starts) >= 5, starts
    assert all(is_encoded_user_key(key) for key in starts), starts
    assert any(key < b"raw0" for key in starts) and any(key > b"txn/" for key in starts), "both kinds split"

    raw = tikv_client.RawClient.connect([cluster.pd_proc.address])  # a fresh region cache
    assert raw.scan(b"raw/", b"raw0", 10_000) == sorted(raw_model.items())
    assert dict(raw.batch_get(list(raw_model))) == raw_model
    txn = tikv_client.TransactionClient.connect([cluster.pd_proc.address]).begin()
    assert dict(txn.scan(b"txn/", b"txn0", 10_000)) == txn_model
    assert all(txn.get(key) == value for key, value in txn_model.items())
    txn.commit()
