"""Fixtures of the integration tests that several modules use (helpers: test_backup_support)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.test_backup_support import AgentFleet


@pytest.fixture
def agent_fleets() -> Iterator[list[AgentFleet]]:
    """The AgentFleets a test appends are stopped (by PID) after it."""
    started: list[AgentFleet] = []
    yield started
    for agents in started:
        agents.stop_all()
