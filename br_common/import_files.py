"""How TiKV names the SSTs that ImportSST.Download staged in its import directory.

TiKV (components/sst_importer, `sst_meta_to_path`) saves a downloaded SST as
`{uuid}_{region_id}_{conf_ver}_{version}_{cf}.sst` under `<data-dir>/import`, the uuid in its
hyphenated form; half-written downloads live in `import/.temp` and go when TiKV starts. kvproto has
no RPC that drops a staged SST (ClearFiles removes a directory of log-restore files), and TiKV's own
cleanup drops only SSTs whose region epoch went stale, so the agent beside the store removes the
staged SSTs of a restore that will never ingest them (br_agent.restore_tasks.run_discard).
"""
from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable
from pathlib import Path

SST_SUFFIX = ".sst"
_PREFIX_LENGTH = len("00000000-0000-0000-0000-000000000000_")  # a hyphenated uuid and its separator
JOB_TAG_BYTES = 4  # a restore's uuids start with its job's tag (br_coordinator.restore_plan.piece_uuid)


def staged_sst_prefix(uuid: bytes) -> str:
    return f"{uuidlib.UUID(bytes=uuid)}_"


def staged_sst_name(uuid: bytes, region_id: int, conf_ver: int, version: int, cf: str) -> str:
    return f"{staged_sst_prefix(uuid)}{region_id}_{conf_ver}_{version}_{cf or 'default'}{SST_SUFFIX}"


def staged_ssts_of_job(import_dir: Path, tag: bytes) -> list[Path]:
    """Every staged SST whose uuid starts with a job's tag (the first 8 hex digits of the uuid)."""
    if len(tag) != JOB_TAG_BYTES or not import_dir.is_dir():
        return []
    return [p for p in import_dir.iterdir()
            if p.name.endswith(SST_SUFFIX) and p.name.startswith(tag.hex()) and p.is_file()]


def staged_ssts(import_dir: Path, uuids: Iterable[bytes]) -> list[Path]:
    """The staged SSTs of these uuids in import_dir (one listing, whatever their region or epoch)."""
    prefixes = {staged_sst_prefix(u) for u in uuids}
    if not prefixes or not import_dir.is_dir():
        return []
    return [p for p in import_dir.iterdir()
            if p.name.endswith(SST_SUFFIX) and p.name[:_PREFIX_LENGTH] in prefixes and p.is_file()]
