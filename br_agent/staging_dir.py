"""Whether a directory can be the agent's staging dir: one check, run by `br-agent --check-config`
(which creates nothing) and by the start (which creates the directory, then checks it again), so
check-config passes exactly the staging dirs the start accepts.

The staging dir holds the agent's sealing key: one created by another user (a predictable name in
a shared /tmp) could hand us their key, so it must belong to the agent's user, and a key already
in it must be private and whole (br_common.sealing.key_file_problem).
"""
from __future__ import annotations

import os
from pathlib import Path

from br_common.sealing import key_file_problem


def problem(path: Path) -> str:
    """"" when the agent can use `path` (creating it if missing), else why not, as one line."""
    if path.exists():
        return _existing(path)
    parent = next(p for p in path.absolute().parents if p.exists())
    if not parent.is_dir():
        return f"staging_dir: {path} cannot be created: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"staging_dir: {path} does not exist and {parent} is not writable by this user"
    return ""


def _existing(path: Path) -> str:
    if not path.is_dir():
        return f"staging_dir: {path} is not a directory"
    owner = path.stat().st_uid
    if owner != os.geteuid():
        return (f"staging_dir: {path} belongs to another user (uid {owner}) and would hold this agent's sealing "
                "key: use a directory of this user (staging_dir, --staging-dir)")
    if not os.access(path, os.W_OK | os.X_OK):
        return f"staging_dir: {path} is not writable by this user"
    key = key_file_problem(path)
    return f"staging_dir: {key}" if key else ""


def prepare(path: Path) -> str:
    """Create the staging dir (0700) if the check allows it; "" when it is ready, else why not. Checked
    again once created: another user may have created it in between."""
    found = problem(path)
    if found:
        return found
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return problem(path)
