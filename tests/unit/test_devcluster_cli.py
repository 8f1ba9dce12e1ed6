"""br-devcluster's argument handling and error paths that need no running cluster."""
import pytest

from br_devcluster import cli, cluster
from br_common import procs


@pytest.mark.parametrize("text,fmt,expected", [
    ("abc", "raw", b"abc"), ("7480000a", "hex", b"\x74\x80\x00\x0a"), ("0x00ff", "hex", b"\x00\xff"),
    ("", "hex", b""), (r"t\x80\x00\x01", "escape", b"t\x80\x00\x01"), (r"a\nb\\", "escape", b"a\nb\\"),
    (r"\101", "escape", b"A"),
])
def test_parse_key(text, fmt, expected):
    assert cli.parse_key(text, fmt) == expected


@pytest.mark.parametrize("text,fmt", [("7g", "hex"), ("abc", "hex"), (r"\x4", "escape"), ("a", "base64")])
def test_parse_key_rejects(text, fmt):
    with pytest.raises(cli.UsageError):
        cli.parse_key(text, fmt)


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(err):
    assert err.count("\n") == 1 and "Traceback" not in err


def test_help_mentions_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("up", "status", "down", "load", "checksum"):
        assert word in out


def test_load_needs_keys_or_size(capsys):
    code, _, err = _run(capsys, "load", "--pd", "127.0.0.1:1")
    assert code == 2 and "exactly one of --keys" in err
    _assert_one_line_error(err)


def test_bad_size_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["load", "--size", "12XQB", "--pd", "127.0.0.1:1"])
    assert exc.value.code == 2
    assert "invalid size" in capsys.readouterr().err


def test_size_smaller_than_a_pair(capsys):
    code, _, err = _run(capsys, "load", "--size", "100", "--value-size", "1KiB", "--pd", "127.0.0.1:1")
    assert code == 2 and "smaller than one pair" in err


def test_checksum_range_end_before_start(capsys):
    code, _, err = _run(capsys, "checksum", "--start", "ff", "--end", "01", "--pd", "127.0.0.1:1")
    assert code == 2 and "sorts before" in err
    _assert_one_line_error(err)


def test_checksum_bad_hex_key(capsys):
    code, _, err = _run(capsys, "checksum", "--start", "zz", "--pd", "127.0.0.1:1")
    assert code == 2 and "is not hex" in err


def test_pd_unreachable_is_one_line(capsys):
    port = procs.free_port()
    code, _, err = _run(capsys, "checksum", "--pd", f"127.0.0.1:{port}")
    assert code == 1 and "cannot reach PD" in err
    _assert_one_line_error(err)


def test_no_cluster_in_data_dir(capsys, tmp_path):
    code, _, err = _run(capsys, "checksum", "--data-dir", str(tmp_path))
    assert code == 2 and "no --pd given" in err
    code, _, err = _run(capsys, "status", "--data-dir", str(tmp_path))
    assert code == 1 and "no devcluster" in err
    code, _, err = _run(capsys, "down", "--data-dir", str(tmp_path))
    assert code == 1 and "no devcluster" in err


def test_up_rejects_more_replicas_than_stores(capsys, tmp_path):
    code, _, err = _run(capsys, "up", "--stores", "2", "--replicas", "3", "--data-dir", str(tmp_path))
    assert code == 2 and "at least as many stores" in err
    assert not (tmp_path / "cluster.json").exists()


def test_default_data_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BR_DEVCLUSTER_DIR", str(tmp_path))
    assert cluster.default_data_dir() == tmp_path


def test_state_round_trip_and_process_table(tmp_path):
    state = cluster._new_state(tmp_path, cluster.ClusterConfig(stores=2, regions=4, gc_interval=1))
    assert [e.name for e in state.processes] == ["pd", "store-1", "store-2"]
    assert "--gc-interval" in state.entry("store-1").args
    assert state.entry("store-2").args[state.entry("store-2").args.index("--pd") + 1] == state.pd_address
    cluster.save_state(tmp_path, state)
    extra = cluster.ProcessEntry(name="redis", role="redis", address="127.0.0.1:1", log_path="x", args=["redis"])
    cluster.add_process(tmp_path, extra)
    loaded = cluster.load_state(tmp_path)
    assert [e.name for e in loaded.processes][-1] == "redis" and loaded.config.regions == 4
    assert not cluster.is_running(loaded.entry("pd"))  # pid 0: never started


def test_corrupt_state_file_is_clear(tmp_path, capsys):
    (tmp_path / "cluster.json").write_text("{not json")
    code, _, err = _run(capsys, "status", "--data-dir", str(tmp_path))
    assert code == 1 and "not a devcluster state file" in err


def test_each_agent_gets_its_own_metrics_port(tmp_path):
    from br_devcluster import fleet
    state = cluster._new_state(tmp_path, cluster.ClusterConfig(stores=2, regions=4))
    state.processes += [fleet.agent_entry(tmp_path, state, store, "redis://127.0.0.1:1/0", "http://127.0.0.1:2")
                        for store in state.by_role("store")]
    urls = fleet.agent_metrics_urls(state)
    assert sorted(urls) == ["agent-1", "agent-2"] and len(set(urls.values())) == 2
    assert all(u.startswith("http://127.0.0.1:") and u.endswith("/metrics") for u in urls.values())


def test_up_starts_one_region_and_passes_the_split_size_to_every_store(tmp_path):
    args = cli.build_parser().parse_args(["up", "--region-split-size", "64KiB", "--split-check-interval", "0.5"])
    assert args.regions == 1 and args.region_split_size == 64 * 1024
    config = cluster.ClusterConfig(stores=2, region_split_size=args.region_split_size,
                                   split_check_interval=args.split_check_interval)
    state = cluster._new_state(tmp_path, config)
    pd_args = state.entry("pd").args
    assert pd_args[pd_args.index("--initial-regions") + 1] == "1"
    for name in ("store-1", "store-2"):
        store_args = state.entry(name).args
        assert store_args[store_args.index("--region-split-size") + 1] == "65536"
        assert store_args[store_args.index("--split-check-interval") + 1] == "0.5"


def test_store_defaults_keep_tikv_split_size(tmp_path):
    state = cluster._new_state(tmp_path, cluster.ClusterConfig(stores=1))
    assert "--region-split-size" not in state.entry("store-1").args
