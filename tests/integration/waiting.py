"""Waiting in the integration tests: on a condition, with a deadline, never a fixed sleep.

``wait_until`` polls a probe until it holds and fails, naming what was awaited, at the
deadline. ``holds`` is its mirror for a behaviour that is a span of time (nothing moves while
checks run, a drained server keeps its clients through a reconcile pass): it checks the
condition at every poll for the whole span and fails at the first poll where it does not hold.
``answered`` reads the progress file of a traffic client (``tests/tools/client.py
--progress-file``), so a test waits for requests to be answered rather than for time to pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(what: str, probe: Callable[[], T], timeout: float = 10.0, poll: float = 0.1) -> T:
    """Poll ``probe`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while not (seen := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last seen: {seen!r})")
        time.sleep(poll)
    return seen


class NotYet:
    """A probe's answer that is not yet what it waits for, saying what it saw instead: false,
    and its text is what ``wait_until`` reports when the deadline passes."""

    def __init__(self, seen: str) -> None:
        self.seen = seen

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return self.seen


def holds(what: str, probe: Callable[[], object], duration: float, poll: float = 0.1) -> None:
    """Check ``probe`` at every poll for ``duration`` seconds; fail when it does not hold."""
    end = time.monotonic() + duration
    while True:
        seen = probe()
        assert seen, f"{what}: no longer so (seen: {seen!r})"
        if time.monotonic() >= end:
            return
        time.sleep(poll)


def answered(progress_file: Path) -> int:
    """How many requests a traffic client started with ``--progress-file`` has had answered
    (successes and failures); 0 before its first report."""
    try:
        return int(progress_file.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return 0
