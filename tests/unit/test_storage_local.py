"""The local backend (a directory): overwrite, atomic writes, errors (the shared promises: test_storage_contract)."""
from __future__ import annotations

from pathlib import Path

import pytest

from br_common.storage import LocalStorage, ObjectNotFound, StorageError, StorageOptions, open_storage
from br_common.storage.local import TMP_MARK


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    opened = open_storage(f"local://{tmp_path}/root")
    assert isinstance(opened, LocalStorage)
    return opened



def test_overwrite(storage: LocalStorage):
    storage.put_bytes("k", b"one")
    storage.put_bytes("k", b"two")
    assert storage.get_bytes("k") == b"two"





def test_list_on_missing_root_is_empty(tmp_path: Path):
    assert list(open_storage(str(tmp_path / "absent")).list()) == []


def _failing_copy(src, dst, bucket, chunk=0):
    dst.write(b"partial")
    raise OSError(28, "No space left on device")


def test_half_written_upload_is_invisible(storage: LocalStorage, tmp_path: Path, monkeypatch):
    monkeypatch.setattr("br_common.storage.local.copy_stream", _failing_copy)
    with pytest.raises(StorageError, match="No space left on device"):
        storage.put_bytes("1/big.sst", b"x" * 10)
    assert not storage.exists("1/big.sst")
    assert not any(TMP_MARK in p.name for p in (tmp_path / "root").rglob("*"))


def test_half_written_download_is_invisible(storage: LocalStorage, tmp_path: Path, monkeypatch):
    storage.put_bytes("k", b"data")
    monkeypatch.setattr("br_common.storage.local.copy_stream", _failing_copy)
    with pytest.raises(StorageError, match="No space left on device"):
        storage.get_file("k", tmp_path / "dl" / "k")
    assert list((tmp_path / "dl").iterdir()) == []


def test_stray_temp_files_are_not_listed(storage: LocalStorage, tmp_path: Path):
    storage.put_bytes("1/a", b"1")
    (tmp_path / "root" / "1" / f".b{TMP_MARK}xyz").write_bytes(b"partial")
    assert [o.key for o in storage.list()] == ["1/a"]


def test_missing_objects(storage: LocalStorage, tmp_path: Path):
    with pytest.raises(ObjectNotFound, match="does not exist"):
        storage.get_bytes("nope")
    with pytest.raises(ObjectNotFound):
        storage.get_file("nope", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    storage.put_bytes("dir/file", b"1")
    with pytest.raises(ObjectNotFound):
        storage.get_bytes("dir")


def test_unreadable_source_is_a_storage_error(storage: LocalStorage, tmp_path: Path):
    with pytest.raises(StorageError, match="upload .* failed") as info:
        storage.put_file("k", tmp_path / "no-such-file")
    assert "\n" not in str(info.value)


def test_key_is_a_file_where_a_directory_is_needed(storage: LocalStorage):
    storage.put_bytes("a", b"1")
    with pytest.raises(StorageError):
        storage.put_bytes("a/b", b"2")


@pytest.mark.parametrize("prefix", ["../", "a/../..", "/etc"])
def test_bad_prefixes(storage: LocalStorage, prefix: str):
    with pytest.raises(ValueError, match="invalid storage prefix"):
        list(storage.list(prefix))


@pytest.mark.parametrize("key", ["", "/abs", "a/../../etc/passwd", "..", "a//b", "a/./b", "dir/", "a\\b"])
def test_bad_keys(storage: LocalStorage, key: str):
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.put_bytes(key, b"x")


def test_rate_limited_local_storage_round_trips(tmp_path: Path):
    limited = open_storage(str(tmp_path / "r"), options=StorageOptions(rate_limit=64 * 1024 * 1024))
    limited.put_bytes("k", b"data" * 1000)
    assert limited.get_bytes("k") == b"data" * 1000
