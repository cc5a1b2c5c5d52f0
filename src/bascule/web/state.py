"""What the WUI keeps on the server per session: flash messages and the pending change.

Nothing here is trusted from the browser: the change a person previews is kept under their
session id and applied from here, so a tampered form cannot apply something else. Memory
only; a daemon restart forgets it (the person previews again). Bounded: the oldest sessions'
entries are dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from fastapi import Request

if TYPE_CHECKING:
    from bascule.web.changes import PendingChange

FlashKind = Literal["ok", "info", "warning", "error"]
MAX_SESSIONS = 1000


@dataclass(frozen=True, kw_only=True)
class Flash:
    """A one-time message shown on the next page the person sees."""

    text: str
    kind: FlashKind = "ok"


@dataclass
class _Entry:
    flashes: list[Flash] = field(default_factory=list)
    pending: PendingChange | None = None


class SessionStates:
    """Per-session state, keyed by the session id (the cookie's secret never leaves here)."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._max = max_sessions

    def _entry(self, session_id: str) -> _Entry:
        entry = self._entries.get(session_id)
        if entry is None:
            entry = self._entries[session_id] = _Entry()
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(session_id)
        return entry

    def flash(self, session_id: str, text: str, kind: FlashKind = "ok") -> None:
        self._entry(session_id).flashes.append(Flash(text=text, kind=kind))

    def take_flashes(self, session_id: str) -> list[Flash]:
        entry = self._entries.get(session_id)
        if entry is None or not entry.flashes:
            return []
        flashes, entry.flashes = entry.flashes, []
        return flashes

    def pending(self, session_id: str) -> PendingChange | None:
        entry = self._entries.get(session_id)
        return entry.pending if entry else None

    def set_pending(self, session_id: str, change: PendingChange | None) -> None:
        self._entry(session_id).pending = change

    def forget(self, session_id: str) -> None:
        """At logout: drop everything of the session."""
        self._entries.pop(session_id, None)


def session_states(request: Request) -> SessionStates:
    states: SessionStates = request.app.state.web_states
    return states


def flash(request: Request, text: str, kind: FlashKind = "ok") -> None:
    """Show ``text`` once on the next page of the current session."""
    session = getattr(request.state, "web_session", None)
    if session is not None:
        session_states(request).flash(session.id, text, kind)
