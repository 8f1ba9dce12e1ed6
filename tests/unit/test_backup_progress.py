"""A backup task says when its Backup stream ended (the coordinator may start the store on the next
range while its files upload: FollowConfig.tail_in_flight), and every later progress keeps saying it."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from br_agent.backup_tasks import _Uploader
from br_common.fleet import messages as m


def test_the_end_of_the_stream_is_reported_and_kept(tmp_path: Path) -> None:
    reports: list[m.TaskProgress] = []
    task = m.BackupRangeTask(job_id="j", attempt="a", cluster_id=1, store_id=1, range=m.KeyRange(), backup_ts=1,
                             storage=m.StorageSpec(url="s3://b/p"), checksum=False)
    uploader = _Uploader(SimpleNamespace(instance="h/1/b"), task, None, tmp_path, reports.append)  # type: ignore[arg-type]
    assert not uploader._progress().store_done  # streaming: holds a store slot
    uploader.store_done()
    uploader.wait()
    assert [r.store_done for r in reports] == [True]
    assert uploader._progress().store_done  # what each later upload reports
