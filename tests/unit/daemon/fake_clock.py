"""A clock the tests move by hand (seconds since the epoch, as ``time.time`` gives)."""

from __future__ import annotations


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
