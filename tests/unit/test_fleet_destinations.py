"""Allowlist of storage destinations: bucket, prefix on a '/' boundary, endpoint; refusal line."""
from __future__ import annotations

import pytest

from br_common.fleet.destinations import allows, parse_entry, refusal
from br_common.fleet.task_errors import TaskError, TaskRefusedError, failure_kind

MINIO = "http://minio.internal:9000"


@pytest.mark.parametrize("url", [
    "s3://bkt/tidb", "s3://bkt/tidb/", "s3://bkt/tidb/2024-06-01", "s3://bkt/tidb/a/b?region=eu-west-1",
    "s3://bkt//tidb//x",
])
def test_prefix_covers_itself_and_below(url: str) -> None:
    assert allows(["s3://bkt/tidb"], url)


@pytest.mark.parametrize("url", [
    "s3://bkt/tidb2", "s3://bkt/tid", "s3://bkt", "s3://other/tidb", "s3://bkt/x/tidb",
    "s3://bkt/tidb?endpoint=http://evil.example:9000",  # an entry without endpoint is AWS only
    "local:///bkt/tidb", "not a url", "s3://bkt/tidb/../secret",
])
def test_everything_else_is_refused(url: str) -> None:
    assert not allows(["s3://bkt/tidb"], url)


def test_endpoint_must_match_when_the_entry_names_one() -> None:
    entry = [f"s3://bkt/p?endpoint={MINIO}"]
    assert allows(entry, f"s3://bkt/p/x?endpoint={MINIO}/")
    assert allows(entry, "s3://bkt/p/x?endpoint=HTTP://Minio.Internal:9000")
    assert not allows(entry, "s3://bkt/p/x")  # AWS is another place
    assert not allows(entry, "s3://bkt/p/x?endpoint=http://minio.internal:9001")
    assert not allows(entry, "s3://bkt/p/x?endpoint=https://minio.internal:9000")
    assert allows(["s3://bkt?endpoint=http://h"], "s3://bkt/any?endpoint=http://h:80")


def test_empty_list_allows_anything_and_local_paths_use_boundaries() -> None:
    assert allows([], "s3://any/where?endpoint=http://x:1")
    assert allows(["local:///data/backups"], "local:///data/backups/b1")
    assert not allows(["local:///data/backups"], "local:///data/backups2")
    assert allows(["s3://one/a", "s3://two/b"], "s3://two/b/c")


@pytest.mark.parametrize("entry, words", [
    ("s3://bkt/p?access-key=AKIAX&secret-access-key=y", "keys"),
    ("s3://bkt/p?region=eu-west-1", "no parameter but endpoint"),
    ("s3://bkt/../p", ".."),
    ("ftp://bkt/p", "scheme"),
])
def test_bad_entries_are_one_line_errors_without_secrets(entry: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        parse_entry(entry)
    assert "\n" not in str(caught.value) and "AKIAX" not in str(caught.value)


def test_refusal_line() -> None:
    line = refusal(2, "s3://bkt/x", ["s3://bkt/tidb"])
    assert line == 'agent of store 2 refuses s3://bkt/x: not in its allowed_destinations ["s3://bkt/tidb"]'
    assert failure_kind(TaskRefusedError(line)) == "refused"  # decided by the type, never by the words
    assert failure_kind(TaskError(line)) == failure_kind(RuntimeError(line)) == failure_kind(line) == "retryable"
