"""Shared fixtures: each start real services on free loopback ports and stop them by PID."""
pytest_plugins = ["tests.fixtures.devcluster", "tests.fixtures.services"]
