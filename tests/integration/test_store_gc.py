"""GC over real processes: versions below PD's GC safe point go, a service safe point protects."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration._store_cluster import Cluster, running_cluster, wait_until

pytestmark = pytest.mark.integration


def gc_until(cluster: Cluster, store_id: int, done) -> None:  # noqa: ANN001
    """Trigger GC passes (SIGUSR1) until done() holds."""
    def check() -> bool:
        cluster.signal_store(store_id)
        return done()
    wait_until(check, "a GC pass")


@pytest.mark.skip(reason="raw KV is API V1 now (unversioned): ported to the transactional API with the Kv* service")
def test_gc_respects_the_service_safe_point(tmp_path: Path) -> None:
    # life time 0: the GC safe point is "now" unless a service safe point holds it back;
    # a long interval: passes run only when the test signals
    with running_cluster(tmp_path, stores=1, regions=1, gc_life_time=0, gc_interval=3600) as cluster:
        store_id = cluster.pd.stores()[0].id
        cluster.put(b"a", b"0")
        t0 = cluster.pd.tso()
        cluster.put(b"a", b"1")
        cluster.put(b"b", b"1")
        protected = cluster.pd.tso()
        cluster.pd.update_service_gc_safe_point("test-backup", 3600, protected)
        cluster.put(b"a", b"2")
        cluster.delete(b"b")

        gc_until(cluster, store_id, lambda: cluster.get(b"a", t0) is None)  # a=0 was unprotected
        assert cluster.get(b"a", protected) == b"1" and cluster.get(b"b", protected) == b"1"
        assert cluster.get(b"a") == b"2" and cluster.get(b"b") is None

        cluster.pd.update_service_gc_safe_point("test-backup", 0, 0)  # remove it
        gc_until(cluster, store_id, lambda: cluster.get(b"a", protected) is None)
        assert cluster.get(b"b", protected) is None  # the tombstone and what it hid are gone
        assert cluster.get(b"a") == b"2" and cluster.get(b"b") is None
