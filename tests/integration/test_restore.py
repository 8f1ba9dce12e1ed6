"""`br restore` over real processes: devclusters, Redis, SeaweedFS S3, a br-agent per store, `br`.

One source cluster is written to and then backed up once to SeaweedFS (raw KV is API V1, as
TiKV's: a raw backup reads the current data, so the writes stop before the backup starts); every test restores
(a copy of) that backup into an emptied target cluster of the shape it asks for (TargetPool). Each cluster's agents use their own Redis
database here (sharing one works too: queues are per cluster, see test_two_clusters).
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from br_common.checksum import Checksum
from br_common.fleet import redis_client
from br_common.kvproto import brpb_pb2
from br_devcluster import cluster
from br_devcluster.load import KeyGen, LoadSpec
from br_devcluster.services import start_redis
from tests.fixtures.devcluster import DevCluster
from tests.integration.test_backup_support import HOST_ENV, AgentFleet, Writer, forget_jobs, loaded_cluster, \
    read_backupmeta, run_br, s3_admin, start_br, summary_value, wipe

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KEYS = 24_000
GEN = KeyGen(LoadSpec(keys=KEYS, value_size=120, seed=7))


@dataclass
class Source:
    dc: DevCluster
    redis_base: str  # redis://host:port (a database number is appended per cluster)
    s3: object
    prefix: str
    backup_ts: int
    expected: Checksum  # the source's checksum at backup_ts
    work: Path

    def url(self, prefix: str | None = None) -> str:
        return self.s3.url(prefix or self.prefix, with_keys=False)


@dataclass
class Target:
    dc: DevCluster
    broker: str
    agents: AgentFleet


def _writes(round_: int) -> list[tuple[bytes, bytes]]:
    """Overwrites 100 keys and adds 50 new ones per round on the source before its backup."""
    i = (round_ * 300) % KEYS
    return [(GEN.key(j), b"rewritten-%d" % round_) for j in range(i, i + 100)] \
        + [(b"extra-%08d" % (round_ * 50 + j), b"x" * 40) for j in range(50)]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, seaweedfs_s3) -> Iterator[Source]:  # noqa: ANN001
    work = tmp_path_factory.mktemp("restore")
    redis = start_redis(work / "redis")
    base = redis.url.rsplit("/", 1)[0]
    prefix = f"restore-{os.getpid()}"
    try:
        with loaded_cluster(work / "source", cluster.ClusterConfig(stores=3, replicas=1, regions=8), GEN) as dc:
            agents = AgentFleet(dc, f"{base}/0", work / "source-agents", env=HOST_ENV)
            try:
                agents.start_all()
                writer = Writer(dc.pd_address, _writes)
                writer.start()
                try:
                    time.sleep(0.2)
                finally:
                    writer.finish()
                done = run_br("backup", "raw", "--pd", dc.pd_address, "-s",
                              seaweedfs_s3.url(prefix, with_keys=False), "--ratelimit", "2", broker=f"{base}/0",
                              log_file=work / "backup.log")
            finally:
                agents.stop_all()  # the source's part is done
            assert done.returncode == 0, done.stderr
            assert writer.rounds > 0
            meta = read_backupmeta(s3_admin(seaweedfs_s3.endpoint), seaweedfs_s3.bucket, prefix)
            expected = dc.kv.checksum()
            yield Source(dc, base, seaweedfs_s3, prefix, meta.end_version, expected, work)
    finally:
        redis.stop()


class TargetPool:
    """Target clusters by shape (stores, replicas, regions), each with its agents on a Redis database
    of its own. A test takes one emptied (no keys, no job records) and gives it back at its end, so
    the module starts one cluster per shape rather than one per test."""

    def __init__(self, source: Source, work: Path) -> None:
        self.source, self.work = source, work
        self._free: dict[tuple[int, int, int], list[Target]] = {}
        self._all: list[tuple[Path, Target]] = []
        self._dbs = iter(range(1, 16))  # Redis has databases 0..15; 0 is the source's

    def take(self, stores: int = 1, replicas: int = 1, regions: int = 2) -> Target:
        free = self._free.setdefault((stores, replicas, regions), [])
        target = free.pop() if free else self._start(stores, replicas, regions)
        wipe(target.dc)
        forget_jobs(target.broker)
        return target

    def give_back(self, target: Target, shape: tuple[int, int, int]) -> None:
        if all(proc.poll() is None for proc in target.agents.procs.values()):
            self._free[shape].append(target)

    def close(self) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(self._all))) as pool:
            list(pool.map(lambda started: self._stop(*started), self._all))

    @staticmethod
    def _stop(data_dir: Path, target: Target) -> None:
        target.agents.stop_all()
        target.dc.kv.close()
        target.dc.pd.close()
        cluster.down(data_dir)

    def _start(self, stores: int, replicas: int, regions: int) -> Target:
        data_dir = self.work / f"target-{len(self._all)}"
        config = cluster.ClusterConfig(stores=stores, replicas=replicas, regions=regions)
        dc = DevCluster(data_dir, cluster.up(data_dir, config).state)
        broker = f"{self.source.redis_base}/{next(self._dbs)}"
        target = Target(dc, broker, AgentFleet(dc, broker, data_dir / "agents", env=HOST_ENV))
        self._all.append((data_dir, target))
        target.agents.start_all()
        return target


@pytest.fixture(scope="module")
def targets(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TargetPool]:
    pool = TargetPool(source, tmp_path_factory.mktemp("targets"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def target_factory(targets: TargetPool) -> Iterator[Callable[..., Target]]:
    """An emptied target cluster of the asked shape, given back to the pool after the test."""
    taken: list[tuple[Target, tuple[int, int, int]]] = []

    def take(stores: int = 1, replicas: int = 1, regions: int = 2) -> Target:
        target = targets.take(stores, replicas, regions)
        taken.append((target, (stores, replicas, regions)))
        return target

    yield take
    for target, shape in taken:
        targets.give_back(target, shape)


def _restore(source: Source, target: Target, *extra: str, verb: str = "full", prefix: str | None = None):  # noqa: ANN202
    return run_br("restore", verb, "--pd", target.dc.pd_address, "-s", source.url(prefix), *extra,
                  broker=target.broker, log_file=source.work / f"restore-{time.monotonic_ns()}.log")


def _copy_backup(source: Source, prefix: str, keep: Callable[[str], bool] = lambda key: True) -> list[str]:
    """Copy the source backup's objects to another prefix (those `keep` accepts); their names."""
    admin = s3_admin(source.s3.endpoint)
    listed = admin.list_objects_v2(Bucket=source.s3.bucket, Prefix=source.prefix + "/")["Contents"]
    names = [o["Key"].removeprefix(source.prefix + "/") for o in listed]
    for name in filter(keep, names):
        admin.copy_object(Bucket=source.s3.bucket, Key=f"{prefix}/{name}",
                          CopySource={"Bucket": source.s3.bucket, "Key": f"{source.prefix}/{name}"})
    return names


def _one_error_line(stderr: str) -> bool:
    """The failure is one `br: error:` line (info lines may precede it off a terminal), no traceback."""
    errors = [line for line in stderr.splitlines() if line.startswith("br: error:")]
    return len(errors) == 1 and stderr.rstrip().endswith(errors[0]) and "Traceback" not in stderr


# --- the round trip ------------------------------------------------------------------------------
@pytest.mark.parametrize("stores, replicas", [(1, 1), (3, 3), (5, 3)])
def test_round_trip_gives_the_source_checksum_at_backup_ts(source: Source, target_factory, stores: int,  # noqa: ANN001
                                                           replicas: int) -> None:
    target = target_factory(stores=stores, replicas=replicas)
    done = _restore(source, target, "--ratelimit", "64")
    assert done.returncode == 0, done.stderr
    assert target.dc.kv.checksum() == source.expected
    assert summary_value(done.stdout, "checksum") == "verified"
    assert summary_value(done.stdout, "backup_ts").startswith(str(source.backup_ts))
    regions = list(target.dc.pd.scan_regions())
    assert {r.leader_store_id for r in regions} == set(target.dc.store_addresses()), "ingest on every store"
    assert all(len(r.region.peers) == replicas for r in regions)
    assert not target.agents.staged_files()


def test_restore_raw_sub_range_restores_exactly_that_range(source: Source, target_factory) -> None:  # noqa: ANN001
    target = target_factory(stores=2, replicas=2)
    start, end = bytes.fromhex("3a"), bytes.fromhex("b7c0")  # cut through files on both sides
    done = _restore(source, target, "--start", start.hex(), "--end", end.hex(), "--format", "hex", verb="raw")
    assert done.returncode == 0, done.stderr
    assert target.dc.kv.checksum() == source.dc.kv.checksum(start, end)
    assert target.dc.kv.scan(b"", start, limit=1) == [] and target.dc.kv.scan(end, b"", limit=1) == []


# --- refusals --------------------------------------------------------------------------------------
def test_non_empty_target_is_refused_unless_allowed_and_then_fails_verification(source: Source,  # noqa: ANN001
                                                                                target_factory) -> None:
    target = target_factory()
    key = b"\xff" * 20  # after every backed-up key
    target.dc.kv.put(key, b"mine")
    done = _restore(source, target)
    assert done.returncode == 1 and "already holds keys" in done.stderr and "--allow-non-empty" in done.stderr
    assert _one_error_line(done.stderr)
    assert target.dc.kv.scan(limit=5) == [(key, b"mine")]
    # allowed: the backup is restored beside the key, and verification names the range that differs
    done = _restore(source, target, "--allow-non-empty")
    assert done.returncode == 1 and "checksum mismatch in range [-inf..+inf)" in done.stderr, done.stderr
    assert _one_error_line(done.stderr)
    assert target.dc.kv.get(key) == b"mine"
    assert target.dc.kv.checksum(b"", key) == source.expected


@pytest.mark.parametrize("damage, words", [
    ("flip", "does not match the sha256 in backupmeta"),
    ("delete", "is missing from storage"),
])
def test_changed_or_missing_object_stops_the_restore_before_any_ingest(source: Source, target_factory, damage: str,  # noqa: ANN001
                                                               words: str) -> None:
    target = target_factory()
    meta = read_backupmeta(s3_admin(source.s3.endpoint), source.s3.bucket, source.prefix)
    victim = sorted(meta.files, key=lambda f: f.size)[-1]
    prefix = f"{source.prefix}-{damage}"
    _copy_backup(source, prefix, keep=lambda name: not (damage == "delete" and name == victim.name))
    admin = s3_admin(source.s3.endpoint)
    if damage == "flip":
        data = bytearray(admin.get_object(Bucket=source.s3.bucket, Key=f"{prefix}/{victim.name}")["Body"].read())
        data[len(data) // 2] ^= 0x01
        admin.put_object(Bucket=source.s3.bucket, Key=f"{prefix}/{victim.name}", Body=bytes(data))
    done = _restore(source, target, prefix=prefix)
    assert done.returncode == 1, done.stdout
    assert words in done.stderr and victim.name in done.stderr and _one_error_line(done.stderr)
    # missing: found before anything was touched; changed (same size): every file is checked before the
    # first ingest, so nothing of any file is written, and the last line says so
    assert target.dc.kv.scan(limit=1) == []
    if damage == "flip":
        assert "nothing was ingested into the cluster" in done.stderr, done.stderr
    assert not target.agents.leftovers()  # agents' staging and the stores' staged imports, at the end of the attempt


@pytest.mark.parametrize("layout, words", [
    ("nothing", "no backup at"),
    ("lock-only", "unfinished"),
    ("truncated", "truncated"),
    ("one-file-dropped", "does not match its seal"),
    ("unsealed", "has no seal"),
])
def test_missing_unfinished_or_truncated_backupmeta_is_one_clear_error(source: Source, target_factory,  # noqa: ANN001
                                                                       layout: str, words: str) -> None:
    target = target_factory()
    prefix = f"{source.prefix}-{layout}"
    admin = s3_admin(source.s3.endpoint)
    if layout == "lock-only":
        admin.put_object(Bucket=source.s3.bucket, Key=f"{prefix}/backup.lock", Body=b"{}")
    if layout == "truncated":
        _copy_backup(source, prefix, keep=lambda name: name != "backupmeta")
        data = admin.get_object(Bucket=source.s3.bucket, Key=f"{source.prefix}/backupmeta")["Body"].read()
        admin.put_object(Bucket=source.s3.bucket, Key=f"{prefix}/backupmeta", Body=data[: len(data) - 7])
    if layout == "one-file-dropped":  # a valid backupmeta, rewritten without one file: restore would lose its keys
        _copy_backup(source, prefix, keep=lambda name: name != "backupmeta")
        data = admin.get_object(Bucket=source.s3.bucket, Key=f"{source.prefix}/backupmeta")["Body"].read()
        meta = brpb_pb2.BackupMeta.FromString(data)
        dropped = meta.files.pop()
        meta.backup_size -= dropped.size
        admin.put_object(Bucket=source.s3.bucket, Key=f"{prefix}/backupmeta", Body=meta.SerializeToString())
    if layout == "unsealed":
        _copy_backup(source, prefix, keep=lambda name: name != "backupmeta.seal")
    done = _restore(source, target, prefix=prefix)
    assert done.returncode == 1
    assert words in done.stderr and _one_error_line(done.stderr), done.stderr
    assert target.dc.kv.scan(limit=1) == []


# --- failures along the way ------------------------------------------------------------------------
def _wait_parts_done(target: Target, proc, at_least: int = 1, timeout: float = 60.0) -> None:  # noqa: ANN001
    """Until the running job has checkpointed some restored file parts."""
    client = redis_client(target.broker)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "br restore ended too early"
        for key in client.scan_iter(match="br:job:*:ranges"):
            if client.hlen(key) >= at_least:
                return
        time.sleep(0.05)
    raise TimeoutError("no file part was restored in time")


def test_agent_killed_mid_restore_and_restarted(source: Source, target_factory, tmp_path: Path) -> None:  # noqa: ANN001
    target = target_factory(stores=3, replicas=3)
    proc = start_br("restore", "full", "--pd", target.dc.pd_address, "-s", source.url(), "--ratelimit", "1",
                    "--concurrency", "2", broker=target.broker, log_path=tmp_path / "restore.out")
    try:
        _wait_parts_done(target, proc)
        target.agents.kill(2)  # SIGKILL, mid-restore
        target.agents.start(2)  # as systemd would
        assert proc.wait(timeout=180) == 0, (tmp_path / "restore.out").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.dc.kv.checksum() == source.expected
    assert not target.agents.leftovers()  # what the killed agent was staging was redone, or discarded


@pytest.mark.parametrize("how, code", [(signal.SIGINT, 130), (signal.SIGKILL, -signal.SIGKILL)],
                         ids=["ctrl-c", "sigkill"])
def test_rerun_after_an_interrupted_restore_completes(source: Source, target_factory, tmp_path: Path,  # noqa: ANN001
                                                      how: signal.Signals, code: int) -> None:
    """Ctrl-C discards what was staged on the way out. After a SIGKILL the rerun withdraws the killed
    run's attempts (a download still running removes what it staged) and, once complete, has every
    store drop what any run of the job staged: no staged import outlives the job either way."""
    target = target_factory(stores=2, replicas=1)
    args = ("restore", "full", "--pd", target.dc.pd_address, "-s", source.url(), "--ratelimit", "1",
            "--concurrency", "1")
    proc = start_br(*args, broker=target.broker, log_path=tmp_path / "first.out")
    try:
        _wait_parts_done(target, proc)
        proc.send_signal(how)  # the operator's Ctrl-C, or the coordinator's host going down
        assert proc.wait(timeout=60) == code
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.dc.kv.checksum() != source.expected  # it really was cut short
    if how == signal.SIGKILL:  # its lease would expire after 30 s: skip the wait
        client = redis_client(target.broker)
        client.delete(*client.keys("br:job:*:lease"))
    done = run_br(*args[:-4], broker=target.broker, log_file=tmp_path / "rerun.log")
    assert done.returncode == 0, done.stderr
    assert "Restore complete (resumed)" in done.stdout
    assert target.dc.kv.checksum() == source.expected
    # a download the killed run had started may outlive the rerun (a dead run's work landing late):
    # withdrawn, it removes what it staged once it ends, so nothing stays
    deadline = time.monotonic() + 60
    while target.agents.leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not target.agents.leftovers()


def test_a_second_different_restore_into_the_same_cluster_is_refused_up_front(source: Source, target_factory,  # noqa: ANN001
                                                                              tmp_path: Path) -> None:
    """Two different restores into one empty cluster would both pass the emptiness check and mix
    their data: while one runs, the cluster's restore lease refuses the other before it touches
    anything; the first completes alone."""
    target = target_factory(stores=2, replicas=1)
    other = f"{source.prefix}-other"
    _copy_backup(source, other)
    first = start_br("restore", "full", "--pd", target.dc.pd_address, "-s", source.url(), "--ratelimit", "1",
                     "--concurrency", "1", broker=target.broker, log_path=tmp_path / "first.out")
    try:
        _wait_parts_done(target, first)
        second = _restore(source, target, prefix=other)
        assert second.returncode == 1 and "is being restored by another restore" in second.stderr, second.stderr
        assert _one_error_line(second.stderr)
        assert first.wait(timeout=120) == 0, (tmp_path / "first.out").read_text()[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert target.dc.kv.checksum() == source.expected
