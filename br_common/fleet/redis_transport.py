"""kombu's Redis transport, made to survive the broker going away while tasks are in flight.

When Redis drops the connection, Celery closes the broker connection before reconnecting; closing
the channel restores the worker's unacknowledged messages, and kombu (5.x) then builds a new
client from connection info it has already released: AttributeError ('NoneType' object has no
attribute 'hostname', celery/kombu#582), which Celery treats as unrecoverable, so the whole agent
exits. Here that case is the connection error it is: Celery's reconnect loop carries on, and the
unacked messages stay in the broker's unacked hash, restored later by visibility timeout (and the
coordinator resends the work of an agent that went quiet in any case).

Every app of the fleet uses it (br_common.fleet.app calls `register`): it takes the place of
kombu's own under the `redis` and `rediss` aliases, so URLs, `as_uri()` and Flower's broker page
still say redis.
"""
from __future__ import annotations

from typing import Any

import redis
from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:  # the connection is closed: no client can be built
            raise redis.exceptions.ConnectionError("the broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel


def register() -> None:
    """Make `redis://` and `rediss://` URLs use this transport (kombu's transport alias table)."""
    for scheme in ("redis", "rediss"):
        kombu_transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
