"""`br backup` over real processes: devcluster, Redis, SeaweedFS S3, br-agent per store, `br`."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from br_devcluster import cluster
from br_devcluster.admin import DevAdmin
from br_devcluster.load import KeyGen, LoadSpec
from br_devcluster.services import start_redis
from tests.fixtures.devcluster import DevCluster
from tests.integration.test_backup_support import HOST_ENV, AgentFleet, Writer, download_files, files_checksum, \
    loaded_cluster, read_backupmeta, restore_files, run_br, s3_admin, start_br, summary_value

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KEYS = 60_000  # ~13 MB over 8 regions: --ratelimit 1 makes one region's task take ~1-2 s
GEN = KeyGen(LoadSpec(keys=KEYS, value_size=200, seed=11))
EXTRA = KeyGen(LoadSpec(keys=KEYS, value_size=50, seed=99))  # keys the writer adds during a backup


class Env:
    def __init__(self, dc: DevCluster, broker: str, agents: AgentFleet, s3, work: Path) -> None:  # noqa: ANN001
        self.dc, self.broker, self.agents, self.s3, self.work = dc, broker, agents, s3, work
        self.admin = s3_admin(s3.endpoint)

    def url(self, prefix: str) -> str:
        return self.s3.url(prefix, with_keys=False)

    def backup(self, prefix: str, *extra: str, timeout: float = 180.0):  # noqa: ANN201
        return run_br("backup", "raw", "--pd", self.dc.pd_address, "-s", self.url(prefix), *extra,
                      broker=self.broker, timeout=timeout, log_file=self.work / f"br-{prefix}.log")

    def start_backup(self, prefix: str, *extra: str):  # noqa: ANN201
        return start_br("backup", "raw", "--pd", self.dc.pd_address, "-s", self.url(prefix), *extra,
                        broker=self.broker, log_path=self.work / f"br-{prefix}.out")

    def meta(self, prefix: str):  # noqa: ANN201
        return read_backupmeta(self.admin, self.s3.bucket, prefix)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, seaweedfs_s3) -> Iterator[Env]:  # noqa: ANN001
    work = tmp_path_factory.mktemp("backup")
    redis = start_redis(work / "redis")
    try:
        with loaded_cluster(work / "cluster", cluster.ClusterConfig(stores=3, replicas=1, regions=8), GEN) as dc:
            agents = AgentFleet(dc, redis.url, work / "agents", env=HOST_ENV)
            try:
                yield Env(dc, redis.url, agents.start_all(), seaweedfs_s3, work)
            finally:
                agents.stop_all()
    finally:
        redis.stop()


def _writes(round_: int) -> list[tuple[bytes, bytes]]:
    """Overwrites 200 keys and adds 300 new ones per round, moving along the key space."""
    i = (round_ * 500) % KEYS
    return [(GEN.key(j), b"new-%d" % round_) for j in range(i, i + 200)] + EXTRA.pairs(i, i + 300)


def test_backup_under_writes_restores_to_the_files_checksum(env: Env, devcluster_factory,  # noqa: ANN001
                                                             tmp_path: Path) -> None:
    """Raw KV is API V1 (unversioned, as TiKV's): a raw backup reads each region's current data,
    so under writes the files are no snapshot at backup_ts; they restore exactly to what they say."""
    writer = Writer(env.dc.pd_address, _writes)
    writer.start()
    try:
        time.sleep(0.3)
        done = env.backup("under-writes", "--ratelimit", "4")
    finally:
        writer.finish()
    assert done.returncode == 0, done.stderr
    assert writer.rounds > 0
    meta = env.meta("under-writes")
    backup_ts = meta.end_version
    assert summary_value(done.stdout, "backup_ts").startswith(str(backup_ts))
    assert summary_value(done.stdout, "checksum") == f"{len(meta.files)} files checked against the store's counts"
    expected = files_checksum(meta)
    assert expected.total_kvs >= KEYS
    assert meta.is_raw_kv and meta.cluster_id == env.dc.cluster_id and meta.br_version.startswith("br-fleet")
    assert meta.backup_size == sum(f.size for f in meta.files) > 0
    assert all(f.name.split("/", 1)[0].isdigit() and f.name.endswith("_default.sst") for f in meta.files)

    root = tmp_path / "download"
    download_files(env.admin, env.s3.bucket, "under-writes", meta, root)
    target = devcluster_factory(stores=2, replicas=1, regions=2)
    restore_files(target, root, list(meta.files))
    assert target.kv.checksum() == expected
    assert not [p for s in env.agents.procs for p in env.agents.staging(s).joinpath("jobs").glob("*/*")]  # cleaned


def test_leader_transfer_and_split_during_backup(env: Env) -> None:
    proc = env.start_backup("moving", "--ratelimit", "1")
    try:
        regions = list(env.dc.pd.scan_regions())
        moved = regions[2]
        others = [p.store_id for p in moved.region.peers if p.store_id != moved.leader_store_id]
        target_store = others[0] if others else None
        time.sleep(0.5)
        mid = regions[5].region.start_key + b"\x80"
        DevAdmin.of(env.dc.pd).split_region(mid)
        if target_store is not None:
            DevAdmin.of(env.dc.pd).transfer_leader(moved.id, target_store)
        assert proc.wait(timeout=180) == 0, (env.work / "br-moving.out").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    meta = env.meta("moving")
    assert files_checksum(meta) == env.dc.kv.checksum(ts=meta.end_version)


def test_agent_sigkilled_mid_task_and_restarted(env: Env) -> None:
    victim = sorted(env.agents.procs)[0]
    proc = env.start_backup("killed", "--ratelimit", "1")
    try:
        jobs = env.agents.staging(victim) / "jobs"
        deadline = time.monotonic() + 60
        while not any(jobs.glob("*/*/*")) and time.monotonic() < deadline:  # a task is staging files
            assert proc.poll() is None, (env.work / "br-killed.out").read_text()
            time.sleep(0.05)
        env.agents.kill(victim)
        env.agents.start(victim)  # as systemd would
        assert proc.wait(timeout=180) == 0, (env.work / "br-killed.out").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (env.work / "br-killed.out").read_text()
    assert "resending" in log and "agent lost" in log
    meta = env.meta("killed")
    assert files_checksum(meta) == env.dc.kv.checksum(ts=meta.end_version)


def test_second_backup_to_a_path_is_refused_and_two_at_once_exactly_one_proceeds(env: Env) -> None:
    first = env.backup("once")
    assert first.returncode == 0, first.stderr
    again = env.backup("once")
    assert again.returncode == 1 and "already holds a complete backup" in again.stderr
    other = env.backup("once", "--compression", "lz4")  # another job: refused by the backupmeta
    assert other.returncode == 1 and "already holds a complete backup" in other.stderr
    assert "Traceback" not in again.stderr + other.stderr

    for name, variants in (("twins", ((), ())), ("rivals", (("--compression", "lz4"), ("--compression", "zstd")))):
        procs = [env.start_backup(name, "--ratelimit", "2", *variants[0]),
                 env.start_backup(name, "--ratelimit", "2", *variants[1])]
        codes = [p.wait(timeout=180) for p in procs]
        assert sorted(codes) == [0, 1], (name, codes)
        out = (env.work / f"br-{name}.out").read_text()
        assert ("already running" in out or "locked by another backup" in out
                or "already holds a complete backup" in out), out
