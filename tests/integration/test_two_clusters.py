"""Two devclusters whose agents share ONE Redis database: store ids repeat (each has a store 1),
yet each cluster's backup runs only on its own agents, because queues are per cluster."""
from __future__ import annotations

from pathlib import Path

import pytest

from br_common.fleet import redis_client
from br_common.fleet.registry import Registry
from br_common.kvproto import brpb_pb2
from br_devcluster.load import KeyGen, LoadSpec
from tests.fixtures.devcluster import DevCluster
from tests.integration.test_backup_support import HOST_ENV, AgentFleet, files_checksum, start_br, summary_value

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KEYS = 3000


def _loaded(devcluster_factory, seed: int) -> DevCluster:  # noqa: ANN001
    dc = devcluster_factory(stores=1, replicas=1, regions=4)
    dc.kv.batch_put(KeyGen(LoadSpec(keys=KEYS, value_size=100, seed=seed)).pairs(0, KEYS))
    return dc


def _meta(path: Path) -> brpb_pb2.BackupMeta:
    meta = brpb_pb2.BackupMeta()
    meta.ParseFromString((path / "backupmeta").read_bytes())
    return meta


def test_two_clusters_on_one_redis_database_each_run_only_their_own_tasks(devcluster_factory, redis_url,  # noqa: ANN001
                                                                          agent_fleets, tmp_path: Path) -> None:
    clusters = {"a": _loaded(devcluster_factory, seed=1), "b": _loaded(devcluster_factory, seed=2)}
    assert clusters["a"].cluster_id != clusters["b"].cluster_id
    assert set(clusters["a"].store_addresses()) == set(clusters["b"].store_addresses())  # both have store 1
    fleets = {}
    for name, dc in clusters.items():
        fleets[name] = AgentFleet(dc, redis_url, tmp_path / f"agents-{name}", env=HOST_ENV)
        agent_fleets.append(fleets[name])
        fleets[name].start_all()
    registry = Registry(redis_client(redis_url))
    for name, dc in clusters.items():
        assert [a.pid for a in registry.alive(dc.cluster_id)] == [p.pid for p in fleets[name].procs.values()]

    running = {name: start_br("backup", "raw", "--pd", dc.pd_address, "-s", f"local://{tmp_path}/backup-{name}",
                              "--ratelimit", "1", broker=redis_url, log_path=tmp_path / f"br-{name}.out")
               for name, dc in clusters.items()}  # at the same time: both clusters' tasks are in Redis at once
    jobs = {}
    for name, proc in running.items():
        out = tmp_path / f"br-{name}.out"
        assert proc.wait(timeout=180) == 0, out.read_text()[-3000:]
        jobs[name] = summary_value(out.read_text(), "job")
        meta = _meta(tmp_path / f"backup-{name}")
        assert meta.cluster_id == clusters[name].cluster_id
        assert files_checksum(meta) == clusters[name].kv.checksum(ts=meta.end_version)

    for name, other in (("a", "b"), ("b", "a")):
        log = fleets[name].log(1)  # Celery logs each task it receives by its Flower name (shadow)
        for task in ("lock", "backup", "backupmeta"):
            assert f"Task {task} job={jobs[name]} " in log, log[-3000:]  # its own tasks ran here...
        assert f"job={jobs[other]}" not in log, log[-3000:]  # ...and none of the other cluster's
        assert "cluster id mismatch" not in log and "another cluster" not in log
