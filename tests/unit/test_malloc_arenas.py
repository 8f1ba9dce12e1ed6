"""The agent caps glibc's malloc arenas (its memory stays flat under many threads), unless the
operator set MALLOC_ARENA_MAX; each case in a fresh interpreter (the cap is process-wide)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = "from br_agent.malloc_arenas import cap_malloc_arenas; print(cap_malloc_arenas())"


def _probe(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the cap is glibc's mallopt")
def test_arenas_are_capped_on_glibc() -> None:
    assert _probe({k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}) == "True"


def test_an_operators_malloc_arena_max_wins() -> None:
    assert _probe({**os.environ, "MALLOC_ARENA_MAX": "4"}) == "False"
