"""pingcap's own client (tikv-client from PyPI, a binding of client-rust) against real PD and store
processes with 30 regions: every raw operation's result is checked against a Python dict.

The client resolves regions through PD, sends each region its share of a request and follows
region errors (NotLeader, EpochNotMatch) itself; so this checks the devcluster's answers as a
real client reads them, also while regions split and leaders move underneath. The client offers
no reverse scan (test_store_raw covers RawScan's reverse mode over gRPC).

One behaviour of the client itself is allowed for: its raw scan (client-rust b12f95e, which
tikv-client 0.0.4 binds) walks the regions one after the other and, when a region answers a
region error, moves on to the next region without retrying it (the stores' logs show the
NotLeader, then the request for the next region). So while regions split and leaders move, a
scan may miss whole regions; what it returns must still be exactly the model's pairs, in order.
After the churn a client with a fresh region cache must read exactly the model.
"""
from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest

from br_common.pd_client import PDClient, PDError
from br_devcluster.admin import DevAdmin
from tests.integration._store_cluster import Cluster, running_cluster

tikv_client = pytest.importorskip("tikv_client")

pytestmark = pytest.mark.integration

REGIONS = 30
MAX_SCAN = 10240  # client-rust's limit of one raw scan


class Model:
    """The expected content of the cluster: a dict, and the answers TiKV's raw API gives over it."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def scan(self, start: bytes, end: bytes | None, limit: int, include_end: bool = False) -> list[tuple[bytes, bytes]]:
        """Pairs with start <= key < end (or <= end), ascending, at most limit."""
        inside = [k for k in self.data if start <= k and (end is None or k < end or include_end and k == end)]
        return [(k, self.data[k]) for k in sorted(inside)[:limit]]

    def delete_range(self, start: bytes, end: bytes | None) -> None:
        for key in [k for k in self.data if start <= k and (end is None or k < end)]:
            del self.data[key]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("raw-client"), stores=3, regions=REGIONS, replicas=2) as running:
        yield running


@pytest.fixture
def client(cluster: Cluster):  # noqa: ANN201 - tikv_client.RawClient
    """A connected RawClient over an empty key space (whatever an earlier test left is deleted)."""
    raw = tikv_client.RawClient.connect([cluster.pd_proc.address])
    raw.delete_range(b"", None)
    assert raw.scan(b"", None, MAX_SCAN) == []
    return raw


def spread_keys(rng: random.Random, count: int) -> list[bytes]:
    """Keys over the whole key space (every region gets some), some sharing prefixes."""
    keys = {bytes([rng.randrange(256), rng.randrange(256)]) + rng.randbytes(rng.randrange(0, 4))
            for _ in range(count)}
    return sorted(keys | {b"\x00", b"\xff\xff\xff"})


def check_everything(client, model: Model) -> None:  # noqa: ANN001
    assert client.scan(b"", None, MAX_SCAN) == model.scan(b"", None, MAX_SCAN)


def test_put_get_batch_get_across_regions(cluster: Cluster, client) -> None:  # noqa: ANN001
    assert len(list(cluster.pd.scan_regions())) >= REGIONS
    rng, model = random.Random(1), Model()
    keys = spread_keys(rng, 800)
    pairs = {k: b"v-" + k for k in keys}
    client.batch_put(pairs)
    model.data.update(pairs)
    for key in rng.sample(keys, 40):
        value = rng.randbytes(rng.randrange(0, 64))
        client.put(key, value)
        model.data[key] = value
    for key in rng.sample(keys, 40) + [b"\x01never", b"\xfe\xfe\xfe-never"]:
        assert client.get(key) == model.data.get(key)
    wanted = rng.sample(keys, 200) + [b"\x42absent", b"\xf0absent"]
    assert dict(client.batch_get(wanted)) == {k: model.data[k] for k in wanted if k in model.data}
    check_everything(client, model)


def test_scans_with_end_keys_over_dozens_of_regions(cluster: Cluster, client) -> None:  # noqa: ANN001
    rng, model = random.Random(2), Model()
    model.data.update({k: k[::-1] for k in spread_keys(rng, 1500)})
    client.batch_put(model.data)
    bounds = [(b"", None), (b"\x00", b"\xff"), (b"\x10", b"\xe0\x05"), (b"\x80", None), (b"\x7f\xff", b"\x80\x01")]
    keys = sorted(model.data)
    for _ in range(25):
        start, end = sorted(rng.sample(keys, 2))
        bounds.append((start, end))
    for start, end in bounds:
        for limit in (1, 7, 100, MAX_SCAN):
            expected = model.scan(start, end, limit)
            assert client.scan(start, end, limit) == expected, (start, end, limit)
            assert client.scan_keys(start, end, limit) == [k for k, _ in expected]
    start, end = keys[10], keys[500]
    assert client.scan(start, end, MAX_SCAN, include_end=True) == model.scan(start, end, MAX_SCAN, include_end=True)


def test_delete_batch_delete_and_delete_range(cluster: Cluster, client) -> None:  # noqa: ANN001
    rng, model = random.Random(3), Model()
    keys = spread_keys(rng, 1000)
    model.data.update({k: b"x" * (len(k) + 1) for k in keys})
    client.batch_put(model.data)
    for key in rng.sample(keys, 20):
        client.delete(key)
        model.data.pop(key)
    doomed = rng.sample(keys, 150) + [b"\x33not-there"]
    client.batch_delete(doomed)
    for key in doomed:
        model.data.pop(key, None)
    for start, end in [(b"\x20", b"\x60"), (b"\x90\x10", b"\x90\x20"), (b"\xc0", None)]:
        client.delete_range(start, end)
        model.delete_range(start, end)
        check_everything(client, model)
    assert [client.get(k) for k in keys[:50]] == [model.data.get(k) for k in keys[:50]]


class Chaos(threading.Thread):
    """Splits regions and moves leaders until stopped, from its own PD connection."""

    def __init__(self, pd_address: str, seed: int) -> None:
        super().__init__(daemon=True)
        self._pd_address = pd_address
        self._rng = random.Random(seed)
        self.stop = threading.Event()
        self.splits = self.transfers = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with PDClient(self._pd_address) as pd, DevAdmin.of(pd) as admin:
                while not self.stop.wait(0.02):
                    self._split(admin)
                    self._transfer(pd, admin)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failure = exc

    def _split(self, admin: DevAdmin) -> None:
        try:
            admin.split_region(bytes([self._rng.randrange(256), self._rng.randrange(256), self._rng.randrange(256)]))
            self.splits += 1
        except PDError:
            pass  # the key is a boundary already

    def _transfer(self, pd: PDClient, admin: DevAdmin) -> None:
        info = pd.region(bytes([self._rng.randrange(256)]))
        others = [p.store_id for p in info.region.peers if p.store_id != info.leader_store_id]
        if others:
            admin.transfer_leader(info.id, self._rng.choice(others))
            self.transfers += 1


def test_every_operation_matches_the_model_while_regions_split_and_leaders_move(
        cluster: Cluster, client) -> None:  # noqa: ANN001
    rng, model = random.Random(4), Model()
    keys = spread_keys(rng, 600)
    chaos = Chaos(cluster.pd_proc.address, seed=5)
    chaos.start()
    try:
        for step in range(150):
            run_one_operation(client, model, rng, keys)
            if step % 25 == 0:
                assert_part_of(client.scan(b"", None, MAX_SCAN), model.scan(b"", None, MAX_SCAN))
    finally:
        chaos.stop.set()
        chaos.join(timeout=30)
    assert chaos.failure is None, chaos.failure
    assert chaos.splits >= 5 and chaos.transfers >= 5
    fresh = tikv_client.RawClient.connect([cluster.pd_proc.address])  # no stale region cache (see above)
    check_everything(fresh, model)
    assert [fresh.get(k) for k in keys] == [model.data.get(k) for k in keys]
    assert len(list(cluster.pd.scan_regions())) >= REGIONS + chaos.splits


def run_one_operation(client, model: Model, rng: random.Random, keys: list[bytes]) -> None:  # noqa: ANN001
    """One random raw operation through the client, its answer checked against the model."""
    kind = rng.choice(["put", "batch_put", "get", "batch_get", "delete", "batch_delete", "scan", "delete_range"])
    if kind == "put":
        key, value = rng.choice(keys), b"p%d" % rng.randrange(1000)
        client.put(key, value)
        model.data[key] = value
    elif kind == "batch_put":
        pairs = {k: b"b%d" % rng.randrange(1000) for k in rng.sample(keys, 30)}
        client.batch_put(pairs)
        model.data.update(pairs)
    elif kind == "get":
        key = rng.choice(keys)
        assert client.get(key) == model.data.get(key)
    elif kind == "batch_get":
        wanted = rng.sample(keys, 40)
        assert dict(client.batch_get(wanted)) == {k: model.data[k] for k in wanted if k in model.data}
    elif kind == "delete":
        key = rng.choice(keys)
        client.delete(key)
        model.data.pop(key, None)
    elif kind == "batch_delete":
        doomed = rng.sample(keys, 10)
        client.batch_delete(doomed)
        for key in doomed:
            model.data.pop(key, None)
    elif kind == "scan":
        start, end = sorted(rng.sample(keys, 2))
        assert_part_of(client.scan(start, end, MAX_SCAN), model.scan(start, end, MAX_SCAN))
    else:
        start, end = sorted(rng.sample(keys, 2))
        client.delete_range(start, end)
        model.delete_range(start, end)


def assert_part_of(got: list[tuple[bytes, bytes]], expected: list[tuple[bytes, bytes]]) -> None:
    """got is expected with some pairs left out (whole regions the client skipped): the same
    pairs, values and order, nothing else."""
    remaining = iter(expected)
    assert all(pair in remaining for pair in got), "a scan returned a pair the model does not have, or out of order"
