"""Transactional backup (and restore) over real processes: devclusters, Redis, SeaweedFS S3, a
br-agent per store and `br`, with pingcap's TransactionClient writing and reading.

The source is written in transactions (values of 0, 255, 256 bytes and 1 MiB, overwrites and
deletes) and a model dict follows it; writes after the backup ts must not show in the backup.
"""
from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from br_common.checksum import Checksum
from br_common.kvproto import kvrpcpb_pb2 as pb
from br_common.tikv_client import RawKVClient
from br_common.txn_checksum import TxnChecksum
from br_common.txn_codec import encode_bytes
from br_devcluster import cluster
from br_devcluster.services import start_redis
from br_devcluster.txn_kv import TxnKV
from tests.fixtures.devcluster import DevCluster
from tests.integration._store_cluster import txn_commit
from tests.integration.test_backup_support import HOST_ENV, AgentFleet, files_checksum, read_backupmeta, run_br, \
    s3_admin, summary_value

tikv_client = pytest.importorskip("tikv_client")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

Model = dict[bytes, bytes]
SIZES = (0, 255, 256, 1 << 20)


def _key(i: int) -> bytes:
    """Keys spread over the whole first byte, so every pre-split region gets some."""
    return bytes([(i * 37) % 256]) + b"/key-%03d" % i


def _workload(model: Model, client) -> None:  # noqa: ANN001 - tikv_client's
    """Puts of every size, overwrites and deletes, each batch one transaction."""
    batches: list[dict[bytes, bytes | None]] = [
        {_key(i): bytes([65 + i % 26]) * SIZES[i % len(SIZES)] for i in range(0, 40)},
        {_key(i): b"over-%d" % i for i in range(0, 40, 3)},
        {_key(i): None for i in range(0, 40, 5)},
        {_key(i): b"L" * 300 for i in range(40, 48)},
    ]
    for writes in batches:
        txn_commit(client, writes)
        for key, value in writes.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value


@dataclass
class Source:
    dc: DevCluster
    broker: str
    s3: object
    model: Model  # the committed data at backup ts
    work: Path

    def url(self, prefix: str) -> str:
        return self.s3.url(prefix, with_keys=False)

    def backup(self, prefix: str, verb: str = "full", *extra: str):  # noqa: ANN201
        return run_br("backup", verb, "--pd", self.dc.pd_address, "-s", self.url(prefix), *extra,
                      broker=self.broker, log_file=self.work / f"br-{prefix}.log")

    def meta(self, prefix: str):  # noqa: ANN201
        return read_backupmeta(s3_admin(self.s3.endpoint), self.s3.bucket, prefix)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, seaweedfs_s3) -> Iterator[Source]:  # noqa: ANN001
    work = tmp_path_factory.mktemp("txnbackup")
    redis = start_redis(work / "redis")
    try:
        with cluster_with_agents(work / "source", cluster.ClusterConfig(stores=3, regions=6), redis.url) as dc:
            model: Model = {}
            _workload(model, tikv_client.TransactionClient.connect([dc.pd_address]))
            yield Source(dc, redis.url, seaweedfs_s3, model, work)
    finally:
        redis.stop()


@contextmanager
def cluster_with_agents(data_dir: Path, config: cluster.ClusterConfig, broker: str) -> Iterator[DevCluster]:
    """A devcluster of the shape with a br-agent per store on broker; stopped (by PID) at the end."""
    try:
        dc = DevCluster(data_dir, cluster.up(data_dir, config).state)
        agents = AgentFleet(dc, broker, data_dir / "agents", env=HOST_ENV).start_all()
        try:
            yield dc
        finally:
            agents.stop_all()
            dc.kv.close()
            dc.pd.close()
    finally:
        if (data_dir / cluster.STATE_FILE).exists():
            cluster.down(data_dir)


def model_checksum(model: Model, start: bytes = b"", end: bytes = b"") -> Checksum:
    return Checksum().add_pairs((k, v) for k, v in model.items() if k >= start and (not end or k < end))


def test_backup_full_is_the_txn_key_space_at_backup_ts(source: Source) -> None:
    prefix = f"txn-full-{os.getpid()}"
    done = source.backup(prefix)
    assert done.returncode == 0, done.stderr
    meta = source.meta(prefix)
    assert meta.is_txn_kv and not meta.is_raw_kv and meta.start_version == 0
    assert {f.cf for f in meta.files} == {"default", "write"}
    assert files_checksum(meta) == model_checksum(source.model)
    with TxnKV(source.dc.pd) as kv:
        assert kv.checksum_at(b"", b"", meta.end_version) == files_checksum(meta)


def test_backup_txn_honours_start_and_end(source: Source) -> None:
    prefix = f"txn-range-{os.getpid()}"
    start, end = _key(3), _key(11)  # raw user keys
    done = source.backup(prefix, "txn", "--start", start.hex(), "--end", end.hex())
    assert done.returncode == 0, done.stderr
    meta = source.meta(prefix)
    assert all(start <= f.start_key and f.end_key and f.end_key <= end for f in meta.files)
    assert files_checksum(meta) == model_checksum(source.model, start, end)


@pytest.fixture(scope="module")
def backup_prefix(source: Source) -> str:
    """One `br backup full` of the source that the restore tests read."""
    prefix = f"txn-restore-{os.getpid()}"
    done = source.backup(prefix)
    assert done.returncode == 0, done.stderr
    return prefix


@contextmanager
def target_cluster(source: Source, name: str, config: cluster.ClusterConfig) -> Iterator[tuple[DevCluster, str]]:
    """An empty cluster of another shape with its own agents (its own Redis database)."""
    broker = source.broker.rsplit("/", 1)[0] + "/1"
    with cluster_with_agents(source.work / name, config, broker) as dc:
        yield dc, broker


def restore(source: Source, dc: DevCluster, broker: str, prefix: str, verb: str = "full", *extra: str):  # noqa: ANN201
    return run_br("restore", verb, "--pd", dc.pd_address, "-s", source.url(prefix), *extra, broker=broker,
                  log_file=source.work / f"restore-{prefix}-{verb}.log")


@pytest.mark.parametrize("stores, regions, replicas", [(2, 3, 2), (3, 7, 3), (5, 11, 3)],
                         ids=["2-stores", "3-stores", "5-stores"])
def test_restore_full_into_another_shape_reads_as_the_model(source: Source, backup_prefix: str, stores: int,
                                                            regions: int, replicas: int) -> None:
    """Into targets of 2, 3 and 5 stores with other region layouts (the source: 3 stores, 6 regions):
    every key, value and delete as the model says, read back with pingcap's snapshot scan."""
    meta = source.meta(backup_prefix)
    shape = cluster.ClusterConfig(stores=stores, replicas=replicas, regions=regions)
    with target_cluster(source, f"target-{stores}", shape) as (dc, broker):
        if stores == 2:
            refused = restore(source, dc, broker, backup_prefix, "raw")
            assert refused.returncode != 0 and "`br restore raw` restores raw KV backups only" in refused.stderr
        done = restore(source, dc, broker, backup_prefix)
        assert done.returncode == 0, done.stderr
        assert summary_value(done.stdout, "checksum") == "verified"
        assert dc.pd.tso() > meta.end_version  # new transactions commit above every restored one
        client = tikv_client.TransactionClient.connect([dc.pd_address])
        snapshot = client.snapshot(dc.pd.tso(), False)
        assert dict(snapshot.scan(b"", b"\xff\xff\xff", 10_000)) == source.model
        with TxnChecksum(dc.pd) as txn:
            assert txn.checksum_at(b"", b"", dc.pd.tso()) == files_checksum(meta)
        txn_commit(client, {_key(1): b"after restore"})  # the target takes new writes on top
        assert client.snapshot(dc.pd.tso(), False).get(_key(1)) == b"after restore"


def test_restore_txn_of_a_range_and_a_raw_backup_refused(source: Source, backup_prefix: str) -> None:
    start, end = _key(3), _key(11)
    raw_prefix = f"raw-{os.getpid()}"
    assert source.backup(raw_prefix, "raw").returncode == 0
    with target_cluster(source, "target-b", cluster.ClusterConfig(stores=1, regions=2)) as (dc, broker):
        refused = restore(source, dc, broker, raw_prefix, "txn")
        assert refused.returncode != 0 and "`br restore txn` restores transactional KV backups only" in refused.stderr
        done = restore(source, dc, broker, backup_prefix, "txn", "--start", start.hex(), "--end", end.hex())
        assert done.returncode == 0, done.stderr
        client = tikv_client.TransactionClient.connect([dc.pd_address])
        got = dict(client.snapshot(dc.pd.tso(), False).scan(b"", b"\xff\xff\xff", 10_000))
        assert got == {k: v for k, v in source.model.items() if start <= k < end}


def test_full_plus_two_incrementals_restore_to_the_last_backup_ts(source: Source, backup_prefix: str) -> None:
    """A chain: the full backup, then two incrementals (--lastbackupts = the previous end version),
    with overwrites, deletes, a re-put of a deleted key and new long values in between; each
    restored onto the one before it, and refused onto any other base."""
    client = tikv_client.TransactionClient.connect([source.dc.pd_address])
    rounds: list[dict[bytes, bytes | None]] = [
        {_key(2): None, _key(4): b"changed", _key(300): b"N" * 1000, _key(41): None},
        {_key(2): b"back again", _key(4): None, _key(300): b"M" * 700, _key(7): b"once more"},
    ]
    base, model, chain = source.meta(backup_prefix), dict(source.model), []
    for n, changes in enumerate(rounds, 1):
        txn_commit(client, changes)
        model = {k: v for k, v in {**model, **changes}.items() if v is not None}
        prefix = f"txn-incr{n}-{os.getpid()}"
        done = source.backup(prefix, "full", "--lastbackupts", str(base.end_version))
        assert done.returncode == 0, done.stderr
        meta = source.meta(prefix)
        assert meta.start_version == base.end_version and meta.is_txn_kv
        assert sum(f.total_kvs for f in meta.files) == len(changes)  # the newest change per key, deletes too
        chain.append(prefix)
        base = meta
    with target_cluster(source, "target-c", cluster.ClusterConfig(stores=2, regions=2)) as (dc, broker):
        refused = restore(source, dc, broker, chain[0])
        assert refused.returncode != 0 and "restore its base first" in refused.stderr
        assert restore(source, dc, broker, backup_prefix).returncode == 0
        refused = restore(source, dc, broker, chain[1])  # the second increment onto the full backup
        assert refused.returncode != 0 and "restore its base first" in refused.stderr
        for prefix in chain:
            done = restore(source, dc, broker, prefix)
            assert done.returncode == 0, done.stderr
        got = dict(tikv_client.TransactionClient.connect([dc.pd_address]).snapshot(dc.pd.tso(), False).scan(
            b"", b"\xff\xff\xff", 10_000))
        assert got == model
    source.model.clear()
    source.model.update(model)


def _prewrite(dc: DevCluster, start: int, primary: bytes, writes: Model, ttl_ms: int,
              secondaries: list[bytes] | None = None) -> None:
    """What a client sends before it dies: KvPrewrite per key, no commit (async commit when
    secondaries are given: the primary's lock lists them)."""
    with RawKVClient(dc.pd) as kv:
        for key, value in writes.items():
            _, response = kv._call_at(encode_bytes(key), "KvPrewrite", lambda ctx, _r, k=key, v=value: (
                pb.PrewriteRequest(context=ctx, mutations=[pb.Mutation(op=pb.Put, key=k, value=v)],
                                   primary_lock=primary, start_version=start, lock_ttl=ttl_ms,
                                   use_async_commit=secondaries is not None, secondaries=secondaries or [])))
            assert not response.errors, response
            assert (response.min_commit_ts > start) == (secondaries is not None), response


def _commit_primary(dc: DevCluster, start: int, primary: bytes) -> None:
    commit_ts = dc.pd.tso()
    with RawKVClient(dc.pd) as kv:
        _, response = kv._call_at(encode_bytes(primary), "KvCommit", lambda ctx, _r: pb.CommitRequest(
            context=ctx, keys=[primary], start_version=start, commit_version=commit_ts))
        assert not response.HasField("error")


def _assert_backup_is_the_model(source: Source, name: str) -> None:
    """`br backup full` completes past the dead clients' locks and holds exactly the model."""
    prefix = f"{name}-{os.getpid()}"
    done = source.backup(prefix)
    assert done.returncode == 0, done.stderr
    assert files_checksum(source.meta(prefix)) == model_checksum(source.model)


def test_locks_of_dead_clients_are_resolved_never_read_half(source: Source) -> None:
    """Three clients died holding locks: one after committing its primary (its secondaries are
    committed by the backup's resolver), one before (rolled back), one whose TTL is still running
    when the backup starts (waited out, then rolled back). Runs last: it changes the source."""
    committed = {_key(200): b"c" * 10, _key(201): b"C" * 400}
    start = source.dc.pd.tso()
    _prewrite(source.dc, start, _key(200), committed, ttl_ms=100)
    _commit_primary(source.dc, start, _key(200))
    _prewrite(source.dc, source.dc.pd.tso(), _key(210), {_key(210): b"no", _key(211): b"NO" * 200}, ttl_ms=100)
    _prewrite(source.dc, source.dc.pd.tso(), _key(220), {_key(220): b"late", _key(221): b"x"}, ttl_ms=4000)
    source.model.update(committed)
    _assert_backup_is_the_model(source, "txn-locks")


def test_async_commit_locks_of_dead_clients_are_decided_by_their_secondaries(source: Source) -> None:
    """Two async-commit clients died after prewriting over several regions: one with every
    secondary locked (it may have told its user it committed: the backup has it), one with a
    secondary never prewritten (rolled back). Without the secondaries' check the backup would
    wait on them forever. Runs last: it changes the source."""
    committed = {_key(230): b"a" * 10, _key(231): b"A" * 400, _key(232): b"aa"}
    _prewrite(source.dc, source.dc.pd.tso(), _key(230), committed, ttl_ms=100, secondaries=[_key(231), _key(232)])
    rolled_back = {_key(240): b"r", _key(241): b"R" * 300}  # _key(242) never prewritten
    _prewrite(source.dc, source.dc.pd.tso(), _key(240), rolled_back, ttl_ms=100,
              secondaries=[_key(241), _key(242)])
    source.model.update(committed)
    _assert_backup_is_the_model(source, "txn-async")


def test_a_backup_while_transactions_commit_is_the_snapshot_at_backup_ts(source: Source) -> None:
    """Writers keep committing overlapping transactions (some conflict and fail) while `br backup full`
    runs: the backup is exactly the data at backup_ts (br compares every range with the Coprocessor
    checksum at backup_ts, and so does this test for the whole). Runs last: it changes the source."""
    stop = threading.Event()
    commits: list[int] = []

    def write(seed: int) -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())  # tikv_client's sync API wants one per thread
        client = tikv_client.TransactionClient.connect([source.dc.pd_address])
        n = 0
        while not stop.is_set():
            n += 1
            try:
                txn_commit(client, {_key((seed * 7 + n + j) % 48): b"w%d-%d" % (seed, n) * (1 + n % 300)
                                    for j in range(3)})
                commits.append(seed)
            except Exception:  # noqa: BLE001 - a write conflict between the writers: that txn failed
                pass

    writers = [threading.Thread(target=write, args=(seed,), daemon=True) for seed in range(2)]
    for writer in writers:
        writer.start()
    try:
        prefix = f"txn-live-{os.getpid()}"
        done = source.backup(prefix)
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
    assert done.returncode == 0, done.stderr
    assert commits  # the writers did commit meanwhile
    meta = source.meta(prefix)
    with TxnChecksum(source.dc.pd) as txn:
        assert txn.checksum_at(b"", b"", meta.end_version) == files_checksum(meta)


def test_an_incremental_by_path_builds_on_a_checked_complete_backup(source: Source, backup_prefix: str) -> None:
    """--lastbackup URL: the previous backup's backupmeta gives the start version; a path without a
    complete backup, or a --lastbackupts that is not its end version, is refused in one line."""
    base = source.meta(backup_prefix)
    txn_commit(tikv_client.TransactionClient.connect([source.dc.pd_address]), {_key(5): b"after the base"})
    missing = source.backup(f"incr-none-{os.getpid()}", "full", "--lastbackup", source.url(f"nothing-{os.getpid()}"))
    assert missing.returncode != 0 and "--lastbackup" in missing.stderr and "backupmeta not found" in missing.stderr
    assert "name a complete backup" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    wrong = source.backup(f"incr-wrong-{os.getpid()}", "full", "--lastbackup", source.url(backup_prefix),
                          "--lastbackupts", str(base.end_version - 1))
    assert wrong.returncode != 0 and f"is not the end version {base.end_version}" in wrong.stderr
    prefix = f"txn-incr-path-{os.getpid()}"
    done = source.backup(prefix, "full", "--lastbackup", source.url(backup_prefix))
    assert done.returncode == 0, done.stderr
    meta = source.meta(prefix)
    assert meta.is_txn_kv and meta.start_version == base.end_version < meta.end_version
    assert sum(f.total_kvs for f in meta.files) >= 1  # the change above (and those of earlier tests)


def test_restore_moves_a_lagging_pds_tso_past_the_backup(source: Source, backup_prefix: str) -> None:
    """The target PD's clock runs an hour behind the backup's end version: br moves its TSO with
    PD's reset-ts and restores; new transactions then commit above every restored one."""
    meta = source.meta(backup_prefix)
    shape = cluster.ClusterConfig(stores=1, regions=2, tso_clock_offset=-3600.0)
    with target_cluster(source, "target-lagging", shape) as (dc, broker):
        assert dc.pd.tso() < meta.end_version
        done = restore(source, dc, broker, backup_prefix)
        assert done.returncode == 0, done.stderr
        assert "moved it past with PD's reset-ts" in (source.work / f"restore-{backup_prefix}-full.log").read_text()
        assert dc.pd.tso() > meta.end_version
        with TxnChecksum(dc.pd) as txn:
            assert txn.checksum_at(b"", b"", dc.pd.tso()) == files_checksum(meta)
        client = tikv_client.TransactionClient.connect([dc.pd_address])
        restored = client.snapshot(meta.end_version, False).get(_key(1))
        txn_commit(client, {_key(1): b"after restore"})
        assert client.snapshot(dc.pd.tso(), False).get(_key(1)) == b"after restore"
        assert client.snapshot(meta.end_version, False).get(_key(1)) == restored  # committed above it
