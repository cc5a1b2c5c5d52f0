"""Drain time: when a drained server's open connections are closed (pure; times are given).

A service's ``drain_time`` bounds how long a drained real server keeps its connections: the
clock starts when the engine drains the server at runtime (``rs drain``), or when it first
sees the server drained (a document that says ``state: drain``, a daemon that restarted);
once it runs out, the engine closes the server's sessions (``shutdown sessions server``).
A server that leaves the drain state stops its clock; drained again, it starts afresh.
"""

from __future__ import annotations

from collections.abc import Mapping

#: A server as HAProxy names it: (backend, server).
ServerKey = tuple[str, str]


class DrainClock:
    """Each drained server's deadline, and which deadlines have run out."""

    def __init__(self) -> None:
        self._deadlines: dict[ServerKey, float] = {}
        self._cut: set[ServerKey] = set()

    def drained(self, key: ServerKey, drain_time: int, now: float) -> None:
        """``key`` was drained at ``now``: its clock starts (again, if it had run out)."""
        self._cut.discard(key)
        if drain_time > 0:
            self._deadlines[key] = now + drain_time
        else:
            self._deadlines.pop(key, None)

    def undrained(self, key: ServerKey) -> None:
        """``key`` takes new connections again, or is gone: no deadline."""
        self._deadlines.pop(key, None)
        self._cut.discard(key)

    def seen(self, drained: Mapping[ServerKey, int], now: float) -> None:
        """What the engine reports now: every drained server with its ``drain_time``. A
        server not known drained starts its clock; one no longer drained forgets it."""
        for key in [*self._deadlines, *self._cut]:
            if key not in drained:
                self.undrained(key)
        for key, drain_time in drained.items():
            if key not in self._deadlines and key not in self._cut and drain_time > 0:
                self._deadlines[key] = now + drain_time

    def due(self, now: float) -> list[ServerKey]:
        """The servers whose deadline has passed, each once (until drained again)."""
        keys = sorted(key for key, deadline in self._deadlines.items() if deadline <= now)
        for key in keys:
            del self._deadlines[key]
            self._cut.add(key)
        return keys

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)
