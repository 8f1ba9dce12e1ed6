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
