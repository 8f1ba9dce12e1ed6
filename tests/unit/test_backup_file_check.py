"""--checksum on the agent: a staged backup file's pairs must be what the store counted."""
from __future__ import annotations

from pathlib import Path

import pytest
from rocksdict import Options, SstFileWriter

from br_agent import backup_tasks
from br_agent.context import AgentTaskError
from br_agent.sst_files import sst_checksum
from br_common.checksum import Checksum
from br_common.data_keys import data_key
from br_common.fleet.messages import FileInfo, KeyRange

PAIRS = [(b"k%03d" % i, b"v" * i) for i in range(40)]


def _sst(path: Path, keys: list[tuple[bytes, bytes]]) -> Path:
    writer = SstFileWriter(Options(raw_mode=True))
    writer.open(str(path))
    for k, v in keys:
        writer[k] = v
    writer.finish()
    return path


def _info(checksum: Checksum) -> FileInfo:
    return FileInfo(name="1/f.sst", crc64xor=checksum.crc64xor, total_kvs=checksum.total_kvs,
                    total_bytes=checksum.total_bytes)


def test_a_file_whose_pairs_match_the_store_counts_passes(tmp_path: Path) -> None:
    path = _sst(tmp_path / "f.sst", [(data_key(k), v) for k, v in PAIRS])
    backup_tasks._verify_pairs(path, _info(Checksum().add_pairs(PAIRS)), tmp_path / "scratch")
    part = sst_checksum(path, tmp_path / "scratch", KeyRange(start=b"k010", end=b"k020"))
    assert part == Checksum().add_pairs(PAIRS[10:20])
    assert not any((tmp_path / "scratch").iterdir())  # scratch DBs removed


def test_a_file_that_differs_from_the_store_counts_is_not_uploaded(tmp_path: Path) -> None:
    path = _sst(tmp_path / "f.sst", [(data_key(k), v) for k, v in PAIRS[:-1]])  # one pair short
    with pytest.raises(AgentTaskError, match="the store counted .*: not recorded"):
        backup_tasks._verify_pairs(path, _info(Checksum().add_pairs(PAIRS)), tmp_path / "scratch")


def test_a_file_without_data_keys_is_refused(tmp_path: Path) -> None:
    path = _sst(tmp_path / "f.sst", PAIRS)  # user keys: not a TiKV backup file
    with pytest.raises(AgentTaskError, match="not a data key"):
        backup_tasks._verify_pairs(path, _info(Checksum().add_pairs(PAIRS)), tmp_path / "scratch")
