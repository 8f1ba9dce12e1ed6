"""Task messages: JSON-mode round trips (bytes as hex), strict validation, proto conversion."""
from __future__ import annotations

import json

import pytest

from br_common.fleet import messages as m
from br_common.fleet.app import make_app, task_modules
from br_common.fleet.queues import agent_queues, storage_queue, store_of, store_queue
from br_common.kvproto import brpb_pb2
from br_common.sealing import SealedBox, generate_private_key, public_key_bytes, seal


def _task() -> m.BackupRangeTask:
    return m.BackupRangeTask(job_id="j", attempt="a", cluster_id=1, store_id=2,
                             range=m.KeyRange(start=b"\x00\xff", end=b""), backup_ts=5,
                             storage=m.StorageSpec(url="s3://b/p", sealed=_box()))


def _box() -> SealedBox:
    return seal(b"secret-stuff", {"ab": public_key_bytes(generate_private_key())})


def test_task_round_trips_through_json_with_hex_bytes() -> None:
    task = _task()
    payload = json.loads(json.dumps(task.model_dump(mode="json")))
    assert payload["range"] == {"start": "00ff", "end": ""}
    assert m.parse(m.BackupRangeTask, payload) == task


def test_parse_rejects_unknown_fields_and_bad_hex_with_one_line() -> None:
    payload = _task().model_dump(mode="json")
    with pytest.raises(m.MessageError, match="BackupRangeTask: secret: Extra"):
        m.parse(m.BackupRangeTask, {**payload, "secret": "x"})
    with pytest.raises(m.MessageError, match="range.start"):
        m.parse(m.BackupRangeTask, {**payload, "range": {"start": "zz", "end": ""}})


def test_file_info_matches_the_proto_field_for_field() -> None:
    proto = brpb_pb2.File(name="1/2_3_ab_4_default.sst", sha256=b"\x01" * 32, start_key=b"a", end_key=b"b",
                          start_version=0, end_version=9, crc64xor=2**64 - 1, total_kvs=3, total_bytes=4,
                          cf="default", size=100)
    info = m.FileInfo.from_proto(proto)
    assert info.to_proto() == proto
    assert m.FileInfo.model_validate(json.loads(info.model_dump_json())) == info


def test_storage_spec_repr_hides_sealed_blobs() -> None:
    spec = m.StorageSpec(url="s3://b/p", sealed=_box())
    assert "ciphertext" not in repr(spec) and "1 agents" in repr(spec)
    assert "secret-stuff" not in spec.model_dump_json()


def test_queues() -> None:
    assert store_queue(42, 7) == "br.42.store.7"
    assert storage_queue(42) == "br.42.storage"
    assert store_of("br.42.store.7") == (42, 7)
    assert store_of(storage_queue(42)) is None and store_of("br.store.7") is None
    assert agent_queues(42, 7) == ["br.42.store.7", "br.42.storage"]
    with pytest.raises(ValueError):
        store_queue(42, 0)
    with pytest.raises(ValueError):
        store_queue(0, 7)


def test_app_settings() -> None:
    app = make_app("redis://127.0.0.1:1/0")
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1 and app.conf.task_track_started
    assert app.conf.result_backend == "redis://127.0.0.1:1/0"
    assert set(app.conf.include) == set(task_modules())


def test_summary_flower_shows_says_what_runs_without_blobs_or_sealed_parts() -> None:
    public = public_key_bytes(generate_private_key())
    box = seal(b'{"access_key": "AKIAEXAMPLE", "secret_access_key": "verysecret"}', {public.hex(): public})
    spec = m.StorageSpec(url="s3://bkt/p?endpoint=http://127.0.0.1:9000", sealed=box)
    task = m.BackupRangeTask(job_id="j1", attempt="a1", cluster_id=7, store_id=2, backup_ts=9,
                             range=m.KeyRange(start=b"\x40", end=b""), storage=spec)
    text = m.summarize(task)
    assert "job_id=j1" in text and "store_id=2" in text and "range=[40..+inf)" in text
    assert "storage=s3://bkt/p?endpoint=http://127.0.0.1:9000 (keys sealed for 1 agents)" in text
    assert "AKIA" not in text and "verysecret" not in text and public.hex() not in text
    meta = m.summarize(m.WriteBackupMetaTask(job_id="j1", storage=spec, backupmeta=b"x" * 4096))
    assert "backupmeta=4.0KiB" in meta
    file = m.FileInfo(name="1/a.sst", size=3 * 1024 * 1024)
    result = m.BackupRangeResult(job_id="j", attempt="a", store_id=1, agent="h/1/b",
                                 covered=[m.CoveredRange(range=m.KeyRange(), files=[file])])
    assert "covered=[1 x CoveredRange]" in m.summarize(result)
    assert m.human_size(1536) == "1.5KiB" and m.human_size(10) == "10B" and m.human_size(5 << 30) == "5.0GiB"
    assert "[1 x FileInfo, 3.0MiB]" in m.summarize(m.CoveredRange(range=m.KeyRange(), files=[file]))
