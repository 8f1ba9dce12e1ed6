"""Where a backup's objects live, in one place (coordinator, agents and tests agree through it).

    backupmeta                      protobuf backup.BackupMeta, written LAST (its presence = complete)
    backupmeta.seal                 JSON: backupmeta's sha256 and size (+ the coordinator's signature),
                                    written just before it (backupmeta.seal)
    backup.lock                     created exclusively at start
    {store_id}/{attempt}/{file}     the SST files of one task attempt, as the store named them

Data files are fenced to the attempt that uploaded them: the store names its files after the
region and its epoch (TiKV: {region}_{epoch}_{sha256(start key)}_{ts}_{cf}.sst), so two attempts
of one range produce the same names with different bytes (SST bytes differ across runs). Under
an attempt's own prefix a straggler of an old attempt (a stalled upload that lands minutes after
the job was resumed elsewhere) can only write names no backupmeta refers to; backupmeta lists
the files of the attempts whose results the coordinator recorded. Uploads are also exclusive
(If-None-Match), so not even a duplicate of the same attempt overwrites what is there.
"""
from __future__ import annotations

BACKUPMETA = "backupmeta"
SEAL = "backupmeta.seal"
LOCK = "backup.lock"


def attempt_object_name(store_file_name: str, attempt: str) -> str:
    """`2/6_1_ab.._default.sst` of attempt `0f3c...` -> `2/0f3c.../6_1_ab.._default.sst`."""
    store, sep, rest = store_file_name.partition("/")
    if not sep or not store or not rest or not attempt or "/" in attempt:
        raise ValueError(f"cannot fence {store_file_name!r} to attempt {attempt!r}")
    return f"{store}/{attempt}/{rest}"


def is_attempt_file(name: str) -> bool:
    """A data file fenced to its attempt (`{store}/{attempt}/{file}`): what a backup run uploads."""
    parts = name.split("/")
    return len(parts) == 3 and parts[0].isdigit() and all(parts)


def orphans(stored: list[tuple[str, int]], listed: set[str]) -> list[tuple[str, int]]:
    """The data files under a complete backup that its backupmeta does not list: uploads of
    attempts that were resent, interrupted or landed late. Nothing else is ever one (backupmeta,
    its seal, backup.lock, foreign objects)."""
    return [(name, size) for name, size in stored if is_attempt_file(name) and name not in listed]
