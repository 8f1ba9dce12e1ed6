"""Snapshot reads and GC of transactional data over a real devcluster (PD + store processes),
through pingcap's client (raw KV is API V1, unversioned, as TiKV's)."""
from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass

import pytest

from br_common.txn_codec import encode_bytes
from br_devcluster.admin import DevAdmin
from tests.integration._store_cluster import txn_commit

tikv_client = pytest.importorskip("tikv_client")
pytestmark = pytest.mark.integration


def _client(dc):  # noqa: ANN001, ANN202
    """One TransactionClient per thread: the binding runs each call on the thread's event loop."""
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    return tikv_client.TransactionClient.connect([dc.pd_address])


def _txn_cluster(devcluster_factory, regions: int, **kwargs):  # noqa: ANN001, ANN202
    """A one-region cluster split at encoded keys (txn clients decode region bounds)."""
    dc = devcluster_factory(regions=1, **kwargs)
    with DevAdmin.of(dc.pd) as admin:
        for i in range(1, regions):
            admin.split_region(encode_bytes(bytes([i * 256 // regions])))
    return dc


def _scan(client, ts: int) -> list[tuple[bytes, bytes]]:  # noqa: ANN001
    return [(bytes(k), bytes(v)) for k, v in client.snapshot(ts, False).scan(b"", b"\xff" * 8, 10_000)]


@dataclass(frozen=True)
class Op:
    key: bytes
    value: bytes | None  # None = delete
    ts_before: int  # a TSO taken before the request was sent: commit ts > ts_before
    ts_after: int  # a TSO taken after it was answered: commit ts < ts_after


def _writer(dc, keys: list[bytes], ops: int, seed: int, log: list[Op]) -> None:  # noqa: ANN001
    client = _client(dc)
    rng = random.Random(seed)
    for n in range(ops):
        key = rng.choice(keys)
        value = None if rng.random() < 0.15 else b"%s:%d" % (key, n)
        before = dc.pd.tso()
        txn_commit(client, {key: value})
        log.append(Op(key, value, before, dc.pd.tso()))


def _allowed(ops: list[Op], ts: int) -> set[bytes | None]:
    """Values key may show at ts: the state after the last op surely committed before ts, or
    after any op in flight at ts (ops of one key are sequential: they come from one writer)."""
    surely = [op for op in ops if op.ts_after < ts]
    maybe = [op for op in ops if op.ts_before < ts < op.ts_after]
    return {surely[-1].value if surely else None} | {op.value for op in maybe}


def test_snapshot_reads_exact_under_concurrent_writes(devcluster_factory):  # noqa: ANN001
    dc = _txn_cluster(devcluster_factory, 4, stores=3, replicas=2)
    reader = _client(dc)
    writers = 3
    keys = {w: [bytes([random.Random(w * 100 + j).randrange(256)]) + b"w%dk%d" % (w, j) for j in range(4)]
            for w in range(writers)}
    logs: dict[int, list[Op]] = {w: [] for w in range(writers)}
    threads = [threading.Thread(target=_writer, args=(dc, keys[w], 40, w, logs[w])) for w in range(writers)]
    for t in threads:
        t.start()
    snapshots = []  # (ts, pairs seen at ts) taken while the writers run
    while any(t.is_alive() for t in threads) or not snapshots:
        ts = dc.pd.tso()
        snapshots.append((ts, _scan(reader, ts)))
    for t in threads:
        t.join()

    ops_by_key: dict[bytes, list[Op]] = {}
    for w in range(writers):
        for op in logs[w]:
            ops_by_key.setdefault(op.key, []).append(op)
    assert len(snapshots) >= 2
    for ts, pairs in snapshots:
        seen = dict(pairs)
        assert set(seen) <= set(ops_by_key), "a key nobody wrote"
        for key, ops in ops_by_key.items():
            assert seen.get(key) in _allowed(ops, ts), f"key {key!r} at ts {ts}"
        # the snapshot at ts no longer moves: reading it again after all writes gives the same
        assert _scan(reader, ts) == pairs


def _wait_until(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_gc_keeps_what_a_service_safe_point_protects_and_removes_the_rest(devcluster_factory):  # noqa: ANN001
    dc = _txn_cluster(devcluster_factory, 2, stores=2, replicas=2, gc_life_time=0.5, gc_interval=0.2)
    client = _client(dc)

    def get(key: bytes, ts: int | None = None) -> bytes | None:
        return client.snapshot(ts or dc.pd.tso(), False).get(key)

    dc.pd.update_service_gc_safe_point("guard", 600, dc.pd.tso())  # hold GC while we write
    key, gone = b"\x10gc-key", b"\x90gc-deleted"
    txn_commit(client, {key: b"v1"})
    txn_commit(client, {gone: b"x"})
    ts_v1 = dc.pd.tso()
    txn_commit(client, {key: b"v2"})
    ts_v2 = dc.pd.tso()
    txn_commit(client, {key: b"v3"})
    txn_commit(client, {gone: None})
    ts_v3 = dc.pd.tso()
    assert [get(key, t) for t in (ts_v1, ts_v2, ts_v3)] == [b"v1", b"v2", b"v3"]
    scan_v2 = _scan(client, ts_v2)

    # protect reads at ts_v2, then let GC run up to it: v1 goes, v2 and v3 stay
    dc.pd.update_service_gc_safe_point("backup-job", 600, ts_v2)
    dc.pd.update_service_gc_safe_point("guard", 0, 0)
    _wait_until(lambda: dc.pd.gc_safe_point() == ts_v2, "the GC safe point to reach the service safe point")
    _wait_until(lambda: get(key, ts_v1) is None, "GC to remove the version only ts_v1 sees")
    assert get(key, ts_v2) == b"v2"
    assert get(key, ts_v3) == b"v3"
    assert get(gone, ts_v2) == b"x"  # the delete is newer than the safe point
    assert _scan(client, ts_v2) == scan_v2
    assert dc.pd.gc_safe_point() == ts_v2  # still held back

    # the service is done: GC passes ts_v3, v2 and the deleted key's versions go
    dc.pd.update_service_gc_safe_point("backup-job", 0, 0)
    _wait_until(lambda: dc.pd.gc_safe_point() > ts_v3, "the GC safe point to pass ts_v3")
    _wait_until(lambda: get(key, ts_v2) is None and get(gone, ts_v2) is None,
                "GC to remove versions below the newest one before the safe point")
    assert get(key) == b"v3" and get(gone) is None
