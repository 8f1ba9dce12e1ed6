"""Job state and lease on fakeredis: stable ids, resume, single runner, attempt skipping."""
from __future__ import annotations

import fakeredis
import pytest

from br_common.fleet.jobs import JobSpec, JobStore, Lease, RangeRecord
from br_common.fleet.messages import FileInfo, KeyRange


@pytest.fixture()
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def _spec(**changes: object) -> JobSpec:
    fields = dict(kind="backup", cluster_id=1, storage_url="s3://b/p", ranges=[KeyRange()],
                  options={"compression": "zstd"})
    return JobSpec(**{**fields, **changes})


def test_job_id_is_stable_and_depends_on_every_part() -> None:
    assert _spec().job_id() == _spec().job_id()
    assert _spec(cluster_id=2).job_id() != _spec().job_id()
    assert _spec(storage_url="s3://b/q").job_id() != _spec().job_id()
    assert _spec(ranges=[KeyRange(start=b"a")]).job_id() != _spec().job_id()
    assert _spec(options={"compression": "lz4"}).job_id() != _spec().job_id()


def test_rerun_reuses_backup_ts_ranges_and_lock_flag(client: fakeredis.FakeRedis) -> None:
    spec = _spec()
    jobs = JobStore(client, spec.job_id())
    assert jobs.load() is None
    jobs.create(spec)
    assert jobs.fix_job_ts(100) == 100
    jobs.mark_lock_acquired()
    jobs.add_range(RangeRecord(range=KeyRange(start=b"b", end=b"c"), files=[FileInfo(name="1/x.sst")]))
    jobs.add_range(RangeRecord(range=KeyRange(start=b"", end=b"b")))
    jobs.finish("failed", "boom")

    again = JobStore(client, spec.job_id())
    state = again.create(spec)
    assert state.status == "running" and state.lock_acquired
    assert again.fix_job_ts(200) == 100
    assert [r.range.start for r in again.ranges()] == [b"", b"b"]
    assert again.ranges()[1].files[0].name == "1/x.sst"
    assert client.ttl(again.key) == -1  # running again: no expiry


def test_a_record_of_the_older_version_keeps_its_ts_under_the_new_name(client: fakeredis.FakeRedis) -> None:
    spec = _spec()
    jobs = JobStore(client, spec.job_id())
    jobs.create(spec)
    client.hset(jobs.key, "backup_ts", 77)  # as the version before job_ts stored it
    assert jobs.load().job_ts == 77
    assert jobs.fix_job_ts(200) == 77
    assert JobStore(client, spec.job_id()).load().job_ts == 77


def test_skip_reason(client: fakeredis.FakeRedis) -> None:
    spec = _spec()
    jobs = JobStore(client, spec.job_id())
    assert "unknown" in jobs.skip_reason("a1")
    jobs.create(spec)
    assert "no coordinator" in jobs.skip_reason("a1")
    lease = Lease(client, jobs.lease_key)
    assert lease.acquire()
    assert jobs.skip_reason("a1") == ""
    jobs.cancel_attempt("a1")
    assert "superseded" in jobs.skip_reason("a1")
    jobs.finish("done")
    assert "done" in jobs.skip_reason("a2")
    assert client.ttl(jobs.key) > 0


def test_lease_exactly_one_holder(client: fakeredis.FakeRedis) -> None:
    first, second = Lease(client, "k", ttl_ms=10_000), Lease(client, "k", ttl_ms=10_000)
    assert first.acquire()
    assert not second.acquire()
    assert second.holder() == first.token
    assert not second.renew()
    second.release()  # not its lease: must not delete it
    assert first.renew() and client.get("k") == first.token.encode()
    first.release()
    assert second.acquire()
