"""Cluster state: store registration, bootstrap trigger, splits, peer changes, persistence; ids; CLI."""
import pytest

from br_common.txn_codec import encode_bytes

from br_devcluster.pd.config import parse_args
from br_devcluster.pd.ids import IdAllocator
from br_devcluster.pd.models import Peer
from br_devcluster.pd.state import ClusterState, NotBootstrapped, StateError, Topology


def make(tmp_path, stores=2, regions=3, replicas=2) -> ClusterState:
    return ClusterState(tmp_path, Topology(stores, regions, replicas), IdAllocator(tmp_path / "ids.json"))


def test_cluster_id_is_random_nonzero_and_persisted(tmp_path):
    state = make(tmp_path)
    assert 0 < state.cluster_id < 2**63
    assert make(tmp_path).cluster_id == state.cluster_id
    (tmp_path / "other").mkdir()
    assert make(tmp_path / "other").cluster_id != state.cluster_id


def test_put_store_assigns_and_recalls_ids(tmp_path):
    state = make(tmp_path)
    first = state.put_store("127.0.0.1:1")
    assert state.put_store("127.0.0.1:1") == first
    assert state.put_store("127.0.0.1:2") != first
    assert state.put_store("127.0.0.1:9", store_id=first) == first  # a known store moved
    assert state.store(first).address == "127.0.0.1:9"
    with pytest.raises(StateError, match="unknown"):
        state.put_store("127.0.0.1:3", store_id=999)


def test_bootstraps_once_enough_stores_registered(tmp_path):
    state = make(tmp_path, stores=2, regions=3, replicas=2)
    state.put_store("127.0.0.1:1")
    assert not state.bootstrapped and state.region_by_key(b"a") is None
    with pytest.raises(NotBootstrapped):
        state.split([b"a"])
    state.put_store("127.0.0.1:2")
    assert state.bootstrapped and len(state.scan_regions(b"", b"", 0)) == 3
    state.put_store("127.0.0.1:3")  # a later store does not re-bootstrap
    assert len(state.scan_regions(b"", b"", 0)) == 3


def test_ids_are_unique_across_stores_regions_and_peers(tmp_path):
    state = make(tmp_path)
    stores = [state.put_store(f"127.0.0.1:{i}") for i in (1, 2)]
    regions = state.scan_regions(b"", b"", 0)
    ids = stores + [r.id for r in regions] + [p.id for r in regions for p in r.peers] + [state.alloc_ids(1)]
    assert len(ids) == len(set(ids))


def test_state_survives_reload(tmp_path):
    state = make(tmp_path)
    for i in (1, 2):
        state.put_store(f"127.0.0.1:{i}")
    state.split([b"\x10", b"\x20"])
    before = state.scan_regions(b"", b"", 0)
    reloaded = make(tmp_path)
    assert reloaded.scan_regions(b"", b"", 0) == before
    assert [s.address for s in reloaded.stores()] == ["127.0.0.1:1", "127.0.0.1:2"]
    assert reloaded.alloc_ids(1) > max(r.id for r in before)


def test_split_skips_boundaries_and_split_one_refuses_them(tmp_path):
    state = make(tmp_path, stores=1, regions=2, replicas=1)
    state.put_store("127.0.0.1:1")
    assert state.split([encode_bytes(b"\x80\x00")]) == []  # bootstrap boundary
    assert len(state.split([b"\x10", b"\x10", b"\x90"])) == 2
    assert state.split_one(b"\x20").start_key == b"\x20"
    with pytest.raises(StateError, match="boundary"):
        state.split_one(b"\x20")


def bootstrapped(tmp_path):
    state = make(tmp_path, stores=3, regions=1, replicas=2)
    for i in (1, 2, 3):
        state.put_store(f"127.0.0.1:{i}")
    return state, state.region_by_key(b"")


def test_leader_change_keeps_epoch(tmp_path):
    state, region = bootstrapped(tmp_path)
    other = region.peers[1].store_id
    updated = state.commit_peer_change(region.id, region.conf_ver, region.version, region.peers, other)
    assert updated.leader_store_id == other and (updated.conf_ver, updated.version) == (1, 1)


def test_peer_change_bumps_conf_ver_and_stale_epoch_is_refused(tmp_path):
    state, region = bootstrapped(tmp_path)
    free = next(s.id for s in state.stores() if s.id not in region.store_ids())
    peers = [region.peers[0], Peer(id=state.alloc_ids(1), store_id=free)]
    updated = state.commit_peer_change(region.id, 1, 1, peers, region.leader_store_id)
    assert updated.conf_ver == 2 and updated.store_ids() == [region.peers[0].store_id, free]
    with pytest.raises(StateError, match="epoch"):
        state.commit_peer_change(region.id, 1, 1, region.peers, region.leader_store_id)


@pytest.mark.parametrize("peers, leader, message", [
    ([], 1, "empty"),
    ([Peer(id=50, store_id=1), Peer(id=51, store_id=1)], 1, "distinct"),
    ([Peer(id=50, store_id=99)], 99, "known stores"),
    ([Peer(id=50, store_id=1)], 2, "holds no peer"),
])
def test_bad_peer_sets_are_refused(tmp_path, peers, leader, message):
    state, region = bootstrapped(tmp_path)
    with pytest.raises(StateError, match=message):
        state.commit_peer_change(region.id, 1, 1, peers, leader)


def test_unknown_region_is_refused(tmp_path):
    state, _ = bootstrapped(tmp_path)
    with pytest.raises(StateError, match="not found"):
        state.commit_peer_change(424242, 1, 1, [], 1)


def test_id_allocator_continues_after_saved_limit(tmp_path):
    ids = IdAllocator(tmp_path / "ids.json", step=10)
    handed = [ids.alloc(1) for _ in range(15)] + [ids.alloc(5)]
    assert IdAllocator(tmp_path / "ids.json", step=10).alloc(1) > max(handed) + 4


@pytest.mark.parametrize("argv, message", [
    (["--host", "h"], "required"),
    (["--data-dir", "d", "--host", "h", "--port", "0"], "--port"),
    (["--data-dir", "d", "--host", "h", "--port", "1", "--max-replicas", "x"], "--max-replicas"),
    (["--data-dir", "d", "--host", "h", "--port", "1", "--initial-regions", "65537"], "--initial-regions"),
])
def test_bad_cli_input_is_one_line_and_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and err.count("\n") == 1


def test_cli_defaults(tmp_path):
    config = parse_args(["--data-dir", str(tmp_path), "--host", "127.0.0.1", "--port", "2379"])
    assert (config.initial_stores, config.initial_regions, config.max_replicas, config.gc_life_time) == (1, 1, 1, 600)
