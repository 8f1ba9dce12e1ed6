"""procs.free_port: a bindable loopback port outside the kernel's ephemeral range, so a port the
kernel hands out meanwhile (a bind to 0, an outgoing connection) never takes it."""
from __future__ import annotations

import socket

import pytest

from br_common import procs


def test_free_ports_are_bindable_and_below_the_ephemeral_range() -> None:
    ephemeral_low = procs._ephemeral_low()  # noqa: SLF001
    for _ in range(50):
        port = procs.free_port()
        assert 20000 <= port < 45000
        assert port < ephemeral_low or ephemeral_low < 22000  # (a machine whose range starts that low: any)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_picked() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # in the ephemeral range: free_port's range is then just [taken, taken + 1)
        taken = held.getsockname()[1]
        with pytest.raises(OSError, match="no free loopback port"):
            procs.free_port(taken, taken + 1)
