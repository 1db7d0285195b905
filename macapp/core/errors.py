"""The two exceptions every layer understands.

``UserError`` is the one error shown to a person: the CLI prints its message on one line and
exits 1, the GUI shows it. ``Cancelled`` ends long work at a user's request and is silent.
Anything else is a bug and is logged with its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can understand and act on (bad file, won't fit, missing model)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class Cancelled(Exception):
    """Raised inside long work when its CancelToken was cancelled."""
