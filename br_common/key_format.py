"""Keys on command lines, as BR's --format takes them, and keys in messages (hex, so that what
br prints can be given back with --format hex). One parser for br and br-devcluster.

    parse_key("7480000a", "hex") == parse_key("0x7480000a", "hex") == b"t\\x80\\x00\\n"
    parse_key(r"t\\x80", "escaped") == b"t\\x80"; parse_key("abc", "raw") == b"abc"
"""
from __future__ import annotations

import codecs

KEY_FORMATS = ("raw", "escaped", "escape", "hex")  # "escape" is BR's older spelling of "escaped"


class KeyFormatError(ValueError):
    """A key that does not parse in its format; str() is one line naming both."""


def parse_key(text: str, fmt: str) -> bytes:
    if fmt == "raw":
        return text.encode()
    if fmt == "hex":
        digits = text[2:] if text[:2].lower() == "0x" else text
        try:
            return bytes.fromhex(digits)
        except ValueError:
            raise KeyFormatError(f"key {text!r} is not hex (--format hex): use pairs of hex digits, "
                                 "e.g. 7480000a") from None
    if fmt in ("escaped", "escape"):
        try:
            return codecs.escape_decode(text.encode())[0]
        except ValueError as exc:
            raise KeyFormatError(f"key {text!r} is not a valid escaped string (--format {fmt}): {exc}") from None
    raise KeyFormatError(f"unknown key format {fmt!r}: use one of {', '.join(KEY_FORMATS)}")


def format_key(key: bytes) -> str:
    return key.hex() if key else '""'
