"""``CliError``: a problem to report to the user, one line each (no import beyond the errors,
so that every command module can raise it without loading the HTTP client)."""

from __future__ import annotations

from bascule.errors import BasculeError


class CliError(BasculeError):
    """A problem to report to the user: each line is printed as ``error: <line>``."""

    def __init__(self, *lines: str) -> None:
        self.lines: tuple[str, ...] = lines or ("unknown error",)
        super().__init__("\n".join(self.lines))
