"""An agent's allowlist of storage destinations: which storage URLs it may write to or read from.

    entries = [parse_entry(e) for e in settings.allowed_destinations]   # ValueError: one line
    allows(["s3://bkt/tidb"], "s3://bkt/tidb/2024-06-01")              # True
    allows(["s3://bkt/tidb"], "s3://bkt/tidb2")                        # False: '/' boundary
    allows(["s3://bkt/tidb"], "s3://bkt/tidb?endpoint=http://evil:9000")  # False: AWS only
    refusal(2, url, entries)  -> "agent of store 2 refuses <url>: not in its allowed_destinations [...]"
                                 (the agent raises it as a TaskRefusedError: br_common.fleet.task_errors)

Why the endpoint counts: a task naming an allowed bucket and prefix on ANOTHER server would
otherwise send the store's data wherever the task says. An entry without `endpoint` therefore
means AWS S3 only; an S3-compatible server must be listed with its endpoint. An empty list
allows any destination (the agent warns at startup). Both agent (authoritative, per task) and
coordinator (early, from the agents' heartbeats) use this module, so they cannot disagree.
"""
from __future__ import annotations

import json

from br_common.storage.schemes import parse_storage_url
from br_common.storage.url import Location

def parse_entry(entry: str) -> Location:
    """An allowlist entry: s3://bucket[/prefix][?endpoint=URL] or local:///path (ValueError)."""
    location = parse_storage_url(entry)
    problem = location.allowlist_problem()
    if problem:
        raise ValueError(f"{_short(entry)}: {problem}")
    return location


def allows(entries: list[str], url: str) -> bool:
    """Whether a task for storage `url` (credential-free) may run; empty entries allow anything."""
    if not entries:
        return True
    try:
        target = parse_storage_url(url)
    except ValueError:
        return False
    return any(entry.covers(target) for entry in map(_entry_or_none, entries) if entry is not None)


def refusal(store_id: int, url: str, entries: list[str]) -> str:
    """The one line an agent fails a refused task with (and the coordinator shows as is)."""
    return f"agent of store {store_id} refuses {url}: not in its allowed_destinations {json.dumps(entries)}"


def _entry_or_none(entry: str) -> Location | None:
    try:
        return parse_entry(entry)
    except ValueError:
        return None  # the agent validated its entries at startup; a bad one covers nothing


def _short(entry: str) -> str:
    return entry.split("?", 1)[0]
