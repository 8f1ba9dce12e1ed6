"""An agent refuses a signed task id it received before, until the signature expires; the memory
survives a restart of the agent."""
from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from br_common.fleet.replays import SeenTasks
from br_common.fleet.signing import Signer, TaskRefused, Verifier


def test_a_task_id_is_claimed_once_and_remembered_across_restarts(tmp_path: Path) -> None:
    seen = SeenTasks(tmp_path / "seen", now=100)
    assert seen.claim("a", expires=200) and not seen.claim("a", expires=200)
    assert seen.claim("b", expires=150)
    again = SeenTasks(tmp_path / "seen", now=160)  # a restarted agent: "b" expired, "a" not
    assert not again.claim("a", expires=200) and again.claim("b", expires=300)
    assert (tmp_path / "seen").read_text().split() == ["a", "200", "b", "300"]


def test_a_replayed_signed_task_is_refused(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    signer = Signer(key)
    verifier = Verifier([key.public_key()], seen=SeenTasks(tmp_path / "seen"))
    args = [{"job_id": "j"}]
    header = signer.header("br.backup.range", "t1", args)
    assert verifier.check("br.backup.range", "t1", args, {}, header) == signer.fingerprint
    with pytest.raises(TaskRefused, match="refused: replayed task t1"):
        verifier.check("br.backup.range", "t1", args, {}, header)
