"""The one exception type the CLI shows as a one-line error (exit 1)."""
from __future__ import annotations


class CommandError(RuntimeError):
    """A failure with a message the operator can act on; never carries a secret."""
