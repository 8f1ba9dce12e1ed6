"""The StorageSpec a task carries: the credential-free URL and, with --send-credentials-to-tikv,
the URL's keys sealed to the live agents' public keys (a new box when the agent set changes).

    specs = StorageSpecs(location, send_credentials=args.send_credentials_to_tikv)
    spec = specs.for_agents(registry.alive())
"""
from __future__ import annotations

import logging

from br_common.fleet.destinations import refusal
from br_common.fleet.messages import StorageSpec
from br_common.fleet.registry import AgentInfo
from br_common.sealing import SealedBox, seal
from br_common.storage import Location
from br_coordinator.errors import CommandError

log = logging.getLogger(__name__)


class StorageSpecs:
    def __init__(self, location: Location, send_credentials: bool) -> None:
        self.location = location
        self.url = location.clean_url()  # every parameter but the credentials (safe in Redis and Flower)
        self.send_credentials = send_credentials and location.has_credentials
        self._box: SealedBox | None = None
        self._recipients: frozenset[str] = frozenset()

    def secrets(self) -> list[str]:
        return self.location.secret_values()

    def for_agents(self, agents: list[AgentInfo]) -> StorageSpec:
        if not self.send_credentials:
            return StorageSpec(url=self.url)
        keys = frozenset(a.public_key for a in agents if a.public_key)
        if not keys:
            raise CommandError("--send-credentials-to-tikv: no live br-agent published a public key to seal to")
        if self._box is None or not keys <= self._recipients:
            recipients = keys | self._recipients
            self._box = seal(self.location.revealed_credentials(), {k: bytes.fromhex(k) for k in recipients})
            self._recipients = recipients
            log.info("sealed the storage credentials to %d agent keys", len(recipients))
        return StorageSpec(url=self.url, sealed=self._box)

    def check_allowed(self, agents: list[AgentInfo]) -> None:
        """Fail early, naming the agent, when one refuses this destination."""
        for agent in agents:
            if not agent.allows(self.url):
                raise CommandError(refusal(agent.store_id, self.url, agent.allowed_destinations))
