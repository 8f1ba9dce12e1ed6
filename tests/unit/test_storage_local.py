"""The local backend (a directory): atomic writes, exclusive create, listing, errors."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from br_common.storage import LocalStorage, ObjectNotFound, StorageError, StorageOptions, StoredObject, \
    open_storage
from br_common.storage.local import TMP_MARK


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    opened = open_storage(f"local://{tmp_path}/root")
    assert isinstance(opened, LocalStorage)
    return opened


def test_round_trip_bytes_and_files(storage: LocalStorage, tmp_path: Path):
    storage.put_bytes("backupmeta", b"meta")
    src = tmp_path / "src.sst"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    storage.put_file("1/2_3_abc_4_default.sst", src)
    assert storage.get_bytes("backupmeta") == b"meta"
    dest = tmp_path / "out" / "deep" / "copy.sst"
    storage.get_file("1/2_3_abc_4_default.sst", dest)
    assert dest.read_bytes() == src.read_bytes()
    assert storage.uri("1/x") == f"local://{tmp_path}/root/1/x"


def test_overwrite(storage: LocalStorage):
    storage.put_bytes("k", b"one")
    storage.put_bytes("k", b"two")
    assert storage.get_bytes("k") == b"two"


def test_create_exclusive(storage: LocalStorage):
    assert storage.create_exclusive("backup.lock", b"job-1") is True
    assert storage.create_exclusive("backup.lock", b"job-2") is False
    assert storage.get_bytes("backup.lock") == b"job-1"
    assert [o.key for o in storage.list()] == ["backup.lock"]  # no temp file left behind


def test_concurrent_creates_exactly_one_wins(storage: LocalStorage):
    for round_ in range(20):
        barrier = threading.Barrier(4)
        results: list[tuple[bool, bytes]] = []

        def create(i: int) -> None:
            barrier.wait()
            payload = f"writer-{i}".encode()
            results.append((storage.create_exclusive(f"lock-{round_}", payload), payload))

        threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [payload for won, payload in results if won]
        assert len(winners) == 1
        assert storage.get_bytes(f"lock-{round_}") == winners[0]


def test_exists_and_list(storage: LocalStorage):
    for key, data in [("2/b", b"22"), ("1/a", b"1"), ("1/ab", b"333"), ("10/c", b""), ("backupmeta", b"m")]:
        storage.put_bytes(key, data)
    assert storage.exists("1/a") and not storage.exists("1") and not storage.exists("nope")
    assert list(storage.list()) == [StoredObject("1/a", 1), StoredObject("1/ab", 3), StoredObject("10/c", 0),
                                    StoredObject("2/b", 2), StoredObject("backupmeta", 1)]
    assert [o.key for o in storage.list("1/")] == ["1/a", "1/ab"]
    assert [o.key for o in storage.list("1")] == ["1/a", "1/ab", "10/c"]  # a string prefix
    assert [o.key for o in storage.list("1/a")] == ["1/a", "1/ab"]
    assert list(storage.list("9/")) == []


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


def test_exclusive_upload_never_overwrites(tmp_path: Path) -> None:
    import hashlib  # noqa: PLC0415

    storage = open_storage(f"local://{tmp_path / 'store'}")
    first, other = tmp_path / "a.sst", tmp_path / "b.sst"
    first.write_bytes(b"first")
    other.write_bytes(b"other")
    digest = hashlib.sha256(b"first").digest()
    assert storage.put_file_exclusive("1/att/x.sst", first, digest)
    assert storage.put_file_exclusive("1/att/x.sst", first, digest)  # a retry of the same bytes
    assert not storage.put_file_exclusive("1/att/x.sst", other, hashlib.sha256(b"other").digest())
    assert storage.get_bytes("1/att/x.sst") == b"first"
