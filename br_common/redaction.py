"""How user keys appear in log lines and messages: hex (what `--format hex` takes back), or `?`
when the operator asked for redaction (`br --redact-info-log`, as BR's: keys are user data)."""
from __future__ import annotations

_redact = False


def set_redact(enabled: bool) -> None:
    global _redact  # noqa: PLW0603 - one process-wide switch, set once by the CLI
    _redact = enabled


def show_key(key: bytes, empty: str = '""') -> str:
    if _redact:
        return "?"
    return key.hex() or empty
