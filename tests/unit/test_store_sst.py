"""SST files: write/read round trip, compressions, backup file rolling and naming, staging."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from br_common.checksum import Checksum
from br_common.data_keys import origin_key
from br_common.kvproto import brpb_pb2
from br_common.tso import compose
from br_common.data_keys import DATA_PREFIX
from br_devcluster.store.backup_files import CF, RegionBackup, write_raw_region_files, write_region_files
from br_devcluster.store.errors import StoreError
from br_devcluster.store.ratelimit import RateLimiter
from br_common.sst_files import sst_summary
from br_devcluster.store.sstfiles import SstBuilder, SstError, read_sst, sst_options
from br_devcluster.store.staging import StagedSst, Staging

PAIRS = [(b"k%05d" % i, b"v" * (i % 50)) for i in range(2000)] + [(b"k\xff\x00", b"last")]


def read_all(path: Path, scratch: Path) -> list[tuple[bytes, bytes]]:
    with read_sst(path, scratch) as pairs:
        return list(pairs)


@pytest.mark.parametrize("compression", [brpb_pb2.UNKNOWN, brpb_pb2.LZ4, brpb_pb2.SNAPPY, brpb_pb2.ZSTD])
def test_round_trip(tmp_path: Path, compression: int) -> None:
    builder = SstBuilder(tmp_path / "out" / "f.sst", sst_options(compression, 3 if compression else 0))
    for key, value in PAIRS:
        builder.add(key, value)
    done = builder.finish()
    assert done.size == done.path.stat().st_size
    assert done.sha256 == hashlib.sha256(done.path.read_bytes()).digest()
    assert read_all(done.path, tmp_path / "scratch") == PAIRS
    assert list((tmp_path / "out").iterdir()) == [done.path]  # no temp file left
    assert not any((tmp_path / "scratch").iterdir())  # scratch DB removed


@pytest.mark.parametrize("content", [None, b"", b"not an sst at all" * 100])
def test_read_missing_or_corrupt(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "bad.sst"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SstError, match="bad.sst"):
        read_all(path, tmp_path / "scratch")


def test_unknown_compression() -> None:
    with pytest.raises(SstError):
        sst_options(99)


def target(tmp_path: Path, start: bytes = b"k", end: bytes = b"l") -> RegionBackup:
    return RegionBackup(root=tmp_path / "backup", store_id=3, region_id=7, epoch_version=2, start_key=start,
                        end_key=end, start_version=0, end_version=compose(1_700_000_000_000, 5))


@dataclass(frozen=True)
class RawEntry:
    """A raw KV pair as the per-entry writer takes it: one default-CF record, stored as given."""

    raw_key: bytes
    value: bytes
    counted_in: str = CF

    def records(self) -> list[tuple[str, bytes, bytes]]:
        return [(CF, self.raw_key, self.value)]


def per_entry(t: RegionBackup, pairs, **kw) -> list[brpb_pb2.File]:  # noqa: ANN001, ANN003
    """The writer of txn backups, fed raw pairs: the reference for the raw loop."""
    return write_region_files(t, (RawEntry(k, v) for k, v in pairs), sst_options(), RateLimiter(), **kw)


def raw_loop(t: RegionBackup, pairs, **kw) -> list[brpb_pb2.File]:  # noqa: ANN001, ANN003
    return write_raw_region_files(t, ((DATA_PREFIX + k, v) for k, v in pairs), sst_options(), RateLimiter(), **kw)


WRITERS = pytest.mark.parametrize("write", [per_entry, raw_loop])


@WRITERS
def test_region_files_roll_and_tile_the_range(tmp_path: Path, write) -> None:  # noqa: ANN001
    t = target(tmp_path)
    files = write(t, PAIRS, roll_bytes=20_000)
    assert len(files) > 2
    assert files[0].start_key == b"k" and files[-1].end_key == b"l"
    for this, following in zip(files, files[1:]):
        assert this.end_key == following.start_key
    read_back: list[tuple[bytes, bytes]] = []
    total = Checksum()
    for f in files:
        digest = hashlib.sha256(f.start_key).hexdigest()
        assert f.name == f"3/7_2_{digest}_1700000000000_default.sst"
        path = t.root / f.name
        assert f.sha256 == hashlib.sha256(path.read_bytes()).digest() and f.size == path.stat().st_size
        stored = read_all(path, tmp_path / "scratch")
        assert all(k.startswith(b"z") for k, _ in stored)  # data keys, as in TiKV's backup files
        pairs = [(origin_key(k), v) for k, v in stored]
        assert all(f.start_key <= k < f.end_key for k, _ in pairs)
        own = Checksum().add_pairs(pairs)
        assert (f.crc64xor, f.total_kvs, f.total_bytes) == (own.crc64xor, own.total_kvs, own.total_bytes)
        assert (f.cf, f.start_version, f.end_version) == ("default", 0, t.end_version)
        read_back += pairs
        total = total.merge(own)
    assert read_back == PAIRS
    assert total == Checksum().add_pairs(PAIRS)


@WRITERS
def test_region_files_are_deterministic(tmp_path: Path, write) -> None:  # noqa: ANN001
    first = write(target(tmp_path), PAIRS, roll_bytes=20_000)
    again = write(target(tmp_path), PAIRS, roll_bytes=20_000)
    assert [f.name for f in first] == [f.name for f in again]
    assert len(list((tmp_path / "backup" / "3").iterdir())) == len(first)


def test_raw_loop_writes_what_the_per_entry_writer_writes(tmp_path: Path) -> None:
    def described(files: list[brpb_pb2.File]) -> list[tuple]:
        return [(f.name, f.start_key, f.end_key, f.crc64xor, f.total_kvs, f.total_bytes, f.cf) for f in files]

    assert described(raw_loop(target(tmp_path / "a"), PAIRS, roll_bytes=20_000)) == described(
        per_entry(target(tmp_path / "b"), PAIRS, roll_bytes=20_000))


@WRITERS
def test_no_pairs_no_files(tmp_path: Path, write) -> None:  # noqa: ANN001
    assert write(target(tmp_path), []) == []
    assert not (tmp_path / "backup").exists()


@WRITERS
def test_failed_write_leaves_no_temp_file(tmp_path: Path, write) -> None:  # noqa: ANN001
    def pairs():
        yield b"k1", b"v"
        raise OSError("disk full")

    with pytest.raises(OSError):
        write(target(tmp_path), pairs())
    assert list((tmp_path / "backup" / "3").iterdir()) == []


def test_staging_records_and_refuses_unknown(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "import")
    uuid = bytes(range(16))
    with pytest.raises(StoreError, match="Download it first"):
        staging.load(uuid)
    staging.record(StagedSst(uuid=uuid))  # an empty download has no file
    assert staging.load(uuid).is_empty
    staged = StagedSst(uuid=uuid, first_key=b"\x00a", last_key=b"\xffz", total_kvs=2)
    staging.record(staged)
    with pytest.raises(StoreError, match="Download it first"):
        staging.load(uuid)  # sidecar without its SST
    staging.sst_path(staged).write_bytes(b"x")
    assert staging.load(uuid).last_key == b"\xffz"
    staging.remove(uuid)
    assert list((tmp_path / "import").iterdir()) == []


def test_staging_cleans_leftovers_but_keeps_staged(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "import")
    uuid = b"\x01" * 16
    staged = StagedSst(uuid=uuid, first_key=b"a", last_key=b"b", total_kvs=1, region_id=3)
    staging.sst_path(staged).write_bytes(b"sst")
    staging.record(staged)
    (staging.scratch / "sst-read-x").mkdir(parents=True)
    (tmp_path / "import" / ".x.sst.123.tmp").write_bytes(b"half")
    staging.clean_leftovers()
    assert sorted(p.name for p in (tmp_path / "import").iterdir()) == [
        "01010101-0101-0101-0101-010101010101_3_0_0_default.sst", f"{uuid.hex()}.json"]


def test_summary_reads_first_last_and_sizes_without_the_pairs(tmp_path: Path) -> None:
    builder = SstBuilder(tmp_path / "f.sst", sst_options())
    for key, value in PAIRS:
        builder.add(b"z" + key, value)
    builder.finish()
    summary = sst_summary(tmp_path / "f.sst", tmp_path / "scratch")
    assert (summary.first_key, summary.last_key) == (b"z" + PAIRS[0][0], b"z" + PAIRS[-1][0])
    assert (summary.entries, summary.deletions) == (len(PAIRS), 0)
    assert summary.key_bytes == sum(1 + len(k) for k, _ in PAIRS)
    assert summary.value_bytes == sum(len(v) for _, v in PAIRS)
    assert (tmp_path / "f.sst").is_file()  # read through a link: the file stays
