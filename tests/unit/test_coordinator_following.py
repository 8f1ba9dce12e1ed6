"""follow.agents: the up-front agent checks both verbs make, and the lost-work check."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from br_common.fleet.registry import AgentInfo
from br_common.fleet.signing import Signer
from br_common.storage import parse_storage_url
from br_coordinator.errors import CommandError
from br_coordinator.follow.agents import check_agents, work_lost
from br_coordinator.storage_spec import StorageSpecs

SIGNER = Signer(ed25519.Ed25519PrivateKey.generate())
SPECS = StorageSpecs(parse_storage_url("local:///backups/b1"), send_credentials=False)
from tests.doubles import FakePD


def _agent(store_id: int, pid: int = 1, **fields: object) -> AgentInfo:
    return AgentInfo(store_id=store_id, store_address="x", hostname="h", pid=pid, boot_id="b" * 36, version="1",
                     worker_name="w", **fields)


def test_agents_that_admit_the_url_and_trust_the_key_pass() -> None:
    agents = [_agent(1, trusted_signers=[SIGNER.fingerprint], allowed_destinations=["local:///backups"]), _agent(2)]
    check_agents(agents, SPECS, SIGNER, {1, 2}, FakePD(cluster_id=5))


@pytest.mark.parametrize("agent, signer, words", [
    (_agent(1, allowed_destinations=["local:///elsewhere"]), SIGNER,
     'agent of store 1 refuses local:///backups/b1: not in its allowed_destinations ["local:///elsewhere"]'),
    (_agent(1, trusted_signers=["SHA256:other"]), SIGNER, "does not trust this coordinator's key"),
    (_agent(1, trusted_signers=[SIGNER.fingerprint]), None, "runs only signed tasks: set BR_SIGNING_KEY"),
])
def test_a_refusing_agent_is_named_before_anything_is_sent(agent: AgentInfo, signer: Signer | None,
                                                           words: str) -> None:
    with pytest.raises(CommandError, match=words.replace("[", r"\[").replace("]", r"\]")):
        check_agents([agent], SPECS, signer, {1}, FakePD(cluster_id=5))


def test_a_needed_store_without_agent_is_named() -> None:
    with pytest.raises(CommandError, match=r"no br-agent for store 3 \(queue br.5.store.3\): .*host of 10.0.0.3:20160"):
        check_agents([_agent(1)], SPECS, SIGNER, {1, 3}, FakePD(cluster_id=5))


def test_work_started_by_a_gone_instance_or_queued_for_gone_agents_is_lost() -> None:
    alive = {a.instance: a for a in [_agent(1, pid=100)]}
    assert not work_lost("STARTED", {"hostname": "w", "pid": 100}, set(), alive)
    assert work_lost("STARTED", {"hostname": "w", "pid": 99}, set(), alive)
    assert work_lost("PROGRESS", {"agent": "h/99/bbbbbbbb"}, set(), alive)
    assert not work_lost("STARTED", None, set(), alive)  # nothing says who runs it: wait
    assert work_lost("PENDING", None, {"h/99/bbbbbbbb"}, alive)
    assert not work_lost("PENDING", None, {"h/99/bbbbbbbb", "h/100/bbbbbbbb"}, alive)
