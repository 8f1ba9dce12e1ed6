"""backup.lock: taken atomically; a retry of the same job recognises its own lock."""
from pathlib import Path

from br_agent.storage_tasks import lock
from br_common.backupmeta.layout import BACKUPMETA
from br_common.fleet import messages as m
from br_common.storage import open_storage


def _task(tmp_path: Path, body: str) -> m.AcquireLockTask:
    return m.AcquireLockTask.model_validate({"job_id": "j1", "storage": {"url": f"local://{tmp_path}"},
                                             "lock_body": body})


def test_lock_is_exclusive_but_recognises_its_own_earlier_attempt(tmp_path: Path) -> None:
    storage = open_storage(f"local://{tmp_path}")
    first = lock(storage, _task(tmp_path, '{"job_id": "j1"}'))
    assert first.outcome == "acquired"
    assert lock(storage, _task(tmp_path, '{"job_id": "j1"}')).outcome == "acquired"  # answer was lost
    assert lock(storage, _task(tmp_path, '{"job_id": "j2"}')).outcome == "locked"


def test_a_complete_backup_is_reported(tmp_path: Path) -> None:
    storage = open_storage(f"local://{tmp_path}")
    storage.put_bytes(BACKUPMETA, b"meta")
    assert lock(storage, _task(tmp_path, "{}")).outcome == "complete"
