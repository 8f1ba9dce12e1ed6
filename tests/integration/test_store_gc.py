"""GC over real processes: versions below PD's GC safe point go, a service safe point protects."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration._store_cluster import Cluster, running_cluster, txn_commit, wait_until

pytestmark = pytest.mark.integration


def gc_until(cluster: Cluster, store_id: int, done) -> None:  # noqa: ANN001
    """Trigger GC passes (SIGUSR1) until done() holds."""
    def check() -> bool:
        cluster.signal_store(store_id)
        return done()
    wait_until(check, "a GC pass")


def test_gc_respects_the_service_safe_point(tmp_path: Path) -> None:
    """Transactional versions (raw API V1 data has none): read through pingcap's client at old ts."""
    tikv_client = pytest.importorskip("tikv_client")
    # life time 0: the GC safe point is "now" unless a service safe point holds it back;
    # a long interval: passes run only when the test signals
    with running_cluster(tmp_path, stores=1, regions=1, gc_life_time=0, gc_interval=3600) as cluster:
        store_id = cluster.pd.stores()[0].id
        client = tikv_client.TransactionClient.connect([cluster.pd_proc.address])

        def get(key: bytes, ts: int | None = None) -> bytes | None:
            return client.snapshot(ts or client.current_timestamp(), False).get(key)

        txn_commit(client, {b"a": b"0"})
        t0 = client.current_timestamp()
        txn_commit(client, {b"a": b"1", b"b": b"1" * 300})  # b's value lives in the default CF
        protected = client.current_timestamp()
        cluster.pd.update_service_gc_safe_point("test-backup", 3600, protected)
        txn_commit(client, {b"a": b"2", b"b": None})

        gc_until(cluster, store_id, lambda: get(b"a", t0) is None)  # a=0 was unprotected
        assert get(b"a", protected) == b"1" and get(b"b", protected) == b"1" * 300
        assert get(b"a") == b"2" and get(b"b") is None

        cluster.pd.update_service_gc_safe_point("test-backup", 0, 0)  # remove it
        gc_until(cluster, store_id, lambda: get(b"a", protected) is None)
        assert get(b"b", protected) is None  # the delete and what it hid are gone
        assert get(b"a") == b"2" and get(b"b") is None
