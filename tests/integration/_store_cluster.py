"""A small real devcluster for the store's integration tests: one PD process and N store
processes on free loopback ports (br_common.procs), plus raw-KV helpers routed through PD."""
from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import TypeVar

import grpc

from br_common.grpc_util import channel_options
from br_devcluster.snapshot_kv import READ_TS_METADATA
from br_common.kvproto import kvrpcpb_pb2, tikvpb_pb2_grpc
from br_common.pd_client import PDClient, RegionInfo
from br_common.procs import free_port, spawn, stop_pid, wait_for_port

HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
T = TypeVar("T")


@dataclass
class Proc:
    name: str
    proc: Popen
    port: int
    data_dir: Path
    log: Path

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass
class Cluster:
    root: Path
    pd_proc: Proc
    stores: list[Proc] = field(default_factory=list)
    pd: PDClient | None = None
    _channels: dict[str, grpc.Channel] = field(default_factory=dict)

    # --- processes ---------------------------------------------------------------------------
    def start_store(self, gc_interval: float = 30.0, data_dir: Path | None = None,
                    flags: tuple[str, ...] = ()) -> Proc:
        n = len(self.stores) + 1
        port = free_port()
        data_dir = data_dir or self.root / f"store-{n}"
        log = self.root / f"store-{n}.log"
        args = [sys.executable, "-m", "br_devcluster.store", "--pd", self.pd_proc.address, "--data-dir",
                str(data_dir), "--host", HOST, "--port", str(port), "--gc-interval", str(gc_interval), *flags]
        entry = Proc(f"store-{n}", spawn(args, log), port, data_dir, log)
        self.stores.append(entry)
        wait_for_port(HOST, port, proc=entry.proc)
        return entry

    def stop(self) -> None:
        for channel in self._channels.values():
            channel.close()
        if self.pd is not None:
            self.pd.close()
        for entry in [*reversed(self.stores), self.pd_proc]:
            stop_pid(entry.proc.pid)

    def wait_ready(self, stores: int, regions: int) -> None:
        """Until every store registered and `regions` regions have a leader."""
        def ready() -> bool:
            if len(self.pd.stores()) < stores:
                return False
            infos = list(self.pd.scan_regions())
            return len(infos) >= regions and all(i.leader_store_id for i in infos)
        wait_until(ready, "cluster ready")

    def signal_store(self, store_id: int, signum: int = signal.SIGUSR1) -> None:
        self.proc_of(store_id).proc.send_signal(signum)

    def proc_of(self, store_id: int) -> Proc:
        address = self.pd.store(store_id).address
        return next(s for s in self.stores if s.address == address)

    # --- raw KV ------------------------------------------------------------------------------
    def stub(self, store_id: int) -> tikvpb_pb2_grpc.TikvStub:
        return tikvpb_pb2_grpc.TikvStub(self.channel(self.pd.store(store_id).address))

    def channel(self, address: str) -> grpc.Channel:
        if address not in self._channels:
            self._channels[address] = grpc.insecure_channel(address, options=channel_options())
        return self._channels[address]

    def route(self, key: bytes) -> tuple[tikvpb_pb2_grpc.TikvStub, kvrpcpb_pb2.Context, RegionInfo]:
        info = self.pd.region(key)
        return self.stub(info.leader_store_id), context_of(info), info

    def put(self, key: bytes, value: bytes) -> None:
        stub, ctx, _ = self.route(key)
        response = stub.RawPut(kvrpcpb_pb2.RawPutRequest(context=ctx, key=key, value=value))
        assert not response.HasField("region_error") and not response.error, response

    def delete(self, key: bytes) -> None:
        stub, ctx, _ = self.route(key)
        response = stub.RawDelete(kvrpcpb_pb2.RawDeleteRequest(context=ctx, key=key))
        assert not response.HasField("region_error") and not response.error, response

    def get(self, key: bytes, ts: int | None = None) -> bytes | None:
        stub, ctx, _ = self.route(key)
        response = stub.RawGet(kvrpcpb_pb2.RawGetRequest(context=ctx, key=key), metadata=read_ts(ts))
        assert not response.HasField("region_error") and not response.error, response
        return None if response.not_found else response.value

    def checksum(self, ts: int | None = None) -> tuple[int, int, int]:
        """(crc64xor, total_kvs, total_bytes) over the whole key space, region by region."""
        crc = kvs = size = 0
        for info in self.pd.scan_regions():
            stub = self.stub(info.leader_store_id)
            request = kvrpcpb_pb2.RawChecksumRequest(context=context_of(info), ranges=[
                kvrpcpb_pb2.KeyRange(start_key=info.region.start_key, end_key=info.region.end_key)])
            response = stub.RawChecksum(request, metadata=read_ts(ts))
            assert not response.HasField("region_error") and not response.error, response
            crc, kvs, size = crc ^ response.checksum, kvs + response.total_kvs, size + response.total_bytes
        return crc, kvs, size


def context_of(info: RegionInfo) -> kvrpcpb_pb2.Context:
    return kvrpcpb_pb2.Context(region_id=info.id, region_epoch=info.region.region_epoch, peer=info.leader)


def read_ts(ts: int | None) -> list[tuple[str, str]]:
    return [] if ts is None else [(READ_TS_METADATA, str(ts))]


def wait_until(check: Callable[[], T], what: str, timeout: float = READY_TIMEOUT) -> T:
    """Poll check() until it returns something truthy; fails the test with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def running_cluster(root: Path, stores: int = 1, regions: int = 1, replicas: int = 1, gc_life_time: float = 600,
                    gc_interval: float = 30.0, store_flags: tuple[str, ...] = ()) -> Iterator[Cluster]:
    """PD + `stores` stores (each also given store_flags), bootstrapped and ready; every process is
    stopped by PID on exit."""
    port = free_port()
    args = [sys.executable, "-m", "br_devcluster.pd", "--data-dir", str(root / "pd"), "--host", HOST, "--port",
            str(port), "--initial-stores", str(stores), "--initial-regions", str(regions), "--max-replicas",
            str(replicas), "--gc-life-time", str(gc_life_time)]
    cluster = Cluster(root, Proc("pd", spawn(args, root / "pd.log"), port, root / "pd", root / "pd.log"))
    try:
        wait_for_port(HOST, port, proc=cluster.pd_proc.proc)
        cluster.pd = PDClient(cluster.pd_proc.address)
        for _ in range(stores):
            cluster.start_store(gc_interval, flags=store_flags)
        cluster.wait_ready(stores, regions)
        yield cluster
    finally:
        cluster.stop()


def txn_commit(client, writes: dict[bytes, bytes | None]) -> None:  # noqa: ANN001 - tikv_client's
    """One transaction of pingcap's TransactionClient: put each value, delete each None."""
    txn = client.begin()
    for key, value in writes.items():
        if value is None:
            txn.delete(key)
        else:
            txn.put(key, value)
    txn.commit()
