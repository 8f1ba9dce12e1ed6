"""Sealed boxes: round trip, several recipients, wrong key, tampering, key files."""
from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from br_common.sealing import KEY_FILE, SealedBox, SealedPart, SealingError, generate_private_key, \
    load_or_create_private_key, open_sealed, public_key_bytes, seal

SECRET = b'{"access_key": "AKIDEXAMPLE", "secret_access_key": "wJalr+XUtnFEMI/K7MDENG"}'


@pytest.fixture
def keys():
    return {name: generate_private_key() for name in ("store-1", "store-2", "store-3")}


def sealed_to(keys) -> SealedBox:
    return seal(SECRET, {name: public_key_bytes(key) for name, key in keys.items()})


def test_every_recipient_opens_its_copy(keys):
    box = sealed_to(keys)
    for name, key in keys.items():
        assert open_sealed(box, name, key) == SECRET


def test_json_round_trip(keys):
    box = sealed_to(keys)
    again = SealedBox.model_validate_json(box.model_dump_json())
    assert again == box
    assert open_sealed(SealedBox.model_validate(box.model_dump(mode="json")), "store-2", keys["store-2"]) == SECRET


def test_box_reveals_nothing(keys):
    box = sealed_to(keys)
    text = box.model_dump_json()
    for fragment in (b"AKIDEXAMPLE", b"wJalr", b"access_key"):
        assert fragment.decode() not in text
        for part in box.parts.values():
            assert fragment not in part.ciphertext
    assert "AKIDEXAMPLE" not in repr(box)


def test_fresh_randomness_every_time(keys):
    one, two = sealed_to(keys), sealed_to(keys)
    assert one.parts["store-1"].ciphertext != two.parts["store-1"].ciphertext
    assert one.parts["store-1"].ephemeral_public != one.parts["store-2"].ephemeral_public


def test_wrong_key_fails(keys):
    box = sealed_to(keys)
    with pytest.raises(SealingError, match="wrong key or tampered"):
        open_sealed(box, "store-1", keys["store-2"])
    with pytest.raises(SealingError, match="wrong key or tampered"):
        open_sealed(box, "store-1", generate_private_key())


def test_unknown_recipient(keys):
    with pytest.raises(SealingError, match="no copy for recipient 'store-9'"):
        open_sealed(sealed_to(keys), "store-9", keys["store-1"])


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1:]


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "ephemeral_public"])
def test_tampering_fails(keys, field):
    box = sealed_to(keys)
    part = box.parts["store-1"]
    bad = part.model_copy(update={field: _flip(getattr(part, field), 3)})
    tampered = box.model_copy(update={"parts": {**box.parts, "store-1": bad}})
    with pytest.raises(SealingError, match="wrong key or tampered"):
        open_sealed(tampered, "store-1", keys["store-1"])


def test_copy_moved_to_another_recipient_fails(keys):
    box = sealed_to(keys)
    swapped = box.model_copy(update={"parts": {"store-2": box.parts["store-1"]}})
    with pytest.raises(SealingError):
        open_sealed(swapped, "store-2", keys["store-2"])


def test_truncated_and_garbage_parts_fail(keys):
    box = sealed_to(keys)
    part = box.parts["store-1"]
    for bad in (part.model_copy(update={"ciphertext": part.ciphertext[:-1]}),
                part.model_copy(update={"ephemeral_public": b"short"}),
                SealedPart(ephemeral_public=bytes(32), nonce=part.nonce, ciphertext=part.ciphertext)):
        with pytest.raises(SealingError):
            open_sealed(SealedBox(parts={"store-1": bad}), "store-1", keys["store-1"])


def test_bad_inputs():
    with pytest.raises(SealingError, match="no recipients"):
        seal(SECRET, {})
    with pytest.raises(SealingError, match="not a 32-byte X25519 key"):
        seal(SECRET, {"a": b"too short"})
    with pytest.raises(SealingError, match="version"):
        open_sealed(SealedBox(version=2, parts={}), "a", generate_private_key())
    with pytest.raises(ValueError):
        SealedBox.model_validate_json('{"parts": {"a": {"nonce": "!!", "ciphertext": "", "ephemeral_public": ""}}}')


def test_key_file_created_private_and_reused(tmp_path: Path):
    key = load_or_create_private_key(tmp_path / "state")
    path = tmp_path / "state" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_private_key(tmp_path / "state")
    assert public_key_bytes(again) == public_key_bytes(key)
    box = seal(SECRET, {"me": public_key_bytes(key)})
    assert open_sealed(box, "me", again) == SECRET


def test_key_file_readable_by_others_is_refused(tmp_path: Path):
    load_or_create_private_key(tmp_path)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(SealingError, match="chmod 600"):
        load_or_create_private_key(tmp_path)


def test_corrupt_key_file(tmp_path: Path):
    fd = os.open(tmp_path / KEY_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, base64.b64encode(os.urandom(32)))
    os.close(fd)
    with pytest.raises(SealingError, match="not an X25519 private key"):
        load_or_create_private_key(tmp_path)
