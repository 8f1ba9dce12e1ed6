"""Storage keys leave the command line: which argv forms are detected, and the pipe read-back."""
from __future__ import annotations

import os

import pytest

from br_coordinator.hide_args import FD_PREFIX, _has_secret, storage_positions, read_storage_arg


def test_finds_every_storage_form() -> None:
    argv = ["backup", "full", "-s", "A", "--storage", "B", "--storage=C", "-sD", "--pd", "x"]
    assert [(argv[i][len(p):]) for i, p in storage_positions(argv)] == ["A", "B", "C", "D"]


def test_secret_detection() -> None:
    assert _has_secret("s3://b/p?access-key=a&secret-access-key=b")
    assert _has_secret("s3://b/p?Secret_Access_Key=b")
    assert _has_secret("s3://b/p?access%2Dkey=a&secret%2daccess%2dkey=b")  # percent-encoded names
    assert not _has_secret("s3://b/p?endpoint=http://x")


def test_read_back_from_pipe() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"s3://b/p?access-key=a&secret-access-key=b")
    os.close(write_end)
    assert read_storage_arg(f"{FD_PREFIX}{read_end}") == "s3://b/p?access-key=a&secret-access-key=b"
    assert read_storage_arg("local:///x") == "local:///x"
    with pytest.raises(ValueError):
        read_storage_arg(f"{FD_PREFIX}notanumber")


def test_the_url_can_come_from_an_environment_variable_or_a_file(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from br_coordinator.hide_args import hide_storage_secrets, read_storage_arg  # noqa: PLC0415

    url = "s3://b/p?access-key=AKIA&secret-access-key=SECRET"
    monkeypatch.setenv("BR_STORAGE_URL", url)
    (tmp_path / "url").write_text(url + "\n")
    assert read_storage_arg("@env:BR_STORAGE_URL") == url
    assert read_storage_arg(f"@file:{tmp_path / 'url'}") == url
    hide_storage_secrets(["backup", "full", "-s", "@env:BR_STORAGE_URL"])  # nothing to hide: no re-exec
    with pytest.raises(ValueError, match="the environment variable NOPE is not set"):
        read_storage_arg("@env:NOPE")
    with pytest.raises(ValueError, match="cannot read"):
        read_storage_arg(f"@file:{tmp_path / 'missing'}")


def test_lastbackup_is_a_storage_url_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """--lastbackup V / --lastbackup=V are found (never --lastbackupts), and read through @env: as -s is."""
    argv = ["backup", "full", "-s", "A", "--lastbackup", "B", "--lastbackup=C", "--lastbackupts", "5",
            "--lastbackupts=6"]
    assert [argv[i][len(p):] for i, p in storage_positions(argv, "--lastbackup")] == ["B", "C"]
    assert [argv[i][len(p):] for i, p in storage_positions(argv)] == ["A"]
    monkeypatch.setenv("BR_BASE_URL", "s3://b/full?access-key=a&secret-access-key=b")
    assert read_storage_arg("@env:BR_BASE_URL", "--lastbackup") == "s3://b/full?access-key=a&secret-access-key=b"
    with pytest.raises(ValueError, match="^--lastbackup @env:NOPE: the environment variable NOPE is not set"):
        read_storage_arg("@env:NOPE", "--lastbackup")
