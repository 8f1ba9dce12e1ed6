"""backupmeta's seal: a changed, truncated or unsealed br-fleet backupmeta is refused; a signed
seal is verified with the coordinator's key; pingcap's BR backups pass with a warning."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from br_common.backupmeta import seal as backupmeta_seal
from br_common.backupmeta.meta import MetaError
from br_common.fleet.signing import Signer

DATA = b"\x08\x01backupmeta bytes"
SIGNER = Signer(ed25519.Ed25519PrivateKey.generate())


@pytest.mark.parametrize("signer", [None, SIGNER])
def test_an_intact_backupmeta_passes_its_seal(signer: Signer | None) -> None:
    sealed = backupmeta_seal.seal(DATA, signer).to_bytes()
    assert backupmeta_seal.check(DATA, sealed, True, signer, "b") == ""


@pytest.mark.parametrize("data, words", [
    (DATA[:-3], "does not match its seal"),  # truncated
    (DATA.replace(b"meta", b"mETA"), "does not match its seal"),  # rewritten, same size
])
def test_a_changed_backupmeta_is_refused(data: bytes, words: str) -> None:
    sealed = backupmeta_seal.seal(DATA, None).to_bytes()
    with pytest.raises(MetaError, match=words):
        backupmeta_seal.check(data, sealed, True, None, "b")


def test_a_resealed_forgery_fails_the_signature() -> None:
    forged = b"forged backupmeta"
    honest = backupmeta_seal.seal(DATA, SIGNER)
    reseal = honest.model_copy(update=backupmeta_seal.seal(forged, None).model_dump(include={"sha256", "size"}))
    with pytest.raises(MetaError, match="bad signature"):
        backupmeta_seal.check(forged, reseal.to_bytes(), True, SIGNER, "b")
    other = Signer(ed25519.Ed25519PrivateKey.generate())  # not our key: checksum only, and said so
    assert "not by this coordinator's key" in backupmeta_seal.check(DATA, honest.to_bytes(), True, other, "b")


def test_no_seal_is_refused_for_br_fleet_and_a_warning_for_br() -> None:
    with pytest.raises(MetaError, match="has no seal"):
        backupmeta_seal.check(DATA, None, True, None, "b")
    assert "not written by br-fleet" in backupmeta_seal.check(DATA, None, False, None, "b")
    with pytest.raises(MetaError, match="seal .* is damaged"):
        backupmeta_seal.check(DATA, b"{not json", True, None, "b")
