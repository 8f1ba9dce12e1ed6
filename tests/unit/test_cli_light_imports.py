"""`br --help` and `br-agent --help` stay fast (issue 12: under 1 s) because building the parsers
imports none of the jobs' heavy libraries; measured by bench/cli_start.py, guarded here by what
gets imported (no timing)."""
from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("celery", "boto3", "botocore", "redis", "grpc", "kombu", "pydantic_settings", "rich")


@pytest.mark.parametrize("build, allowed", [
    ("from br_coordinator.run import build_parser; build_parser()", ()),
    ("from br_agent.cli import build_parser; build_parser()", ("pydantic_settings",)),  # its flags are the model's
])
def test_building_the_parsers_imports_no_heavy_library(build: str, allowed: tuple[str, ...]) -> None:
    heavy = tuple(m for m in HEAVY if m not in allowed)
    probe = f"import sys; {build}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
