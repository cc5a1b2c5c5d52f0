"""Rise and fall: the pure state machine that turns check results into up or down.

Where it sits: the checker (checker.py) runs a probe (probes.py), gets a ``CheckResult`` and
asks this module for the real server's next state; when ``up`` flips, the checker tells the
daemon, which moves the server in or out of the engine's maps. Nothing here touches a socket
or the clock: values in, values out.

The machine is a data table from ``(state, event)`` to the next state, built once per
``(rise, fall)`` pair from ``HealthCheck``. A state is a phase (an ``enum.Enum``) and a count
of consecutive results that disagree with the current verdict::

    DOWN ──success──▶ RISING(1) ─success─▶ … RISING(rise-1) ──success──▶ UP
      ▲                   │ failure                                     │ failure
      │                   ▼                                             ▼
      │                 DOWN                                       FAILING(1) … FAILING(fall-1)
      └──────────────────────────── failure (the fall-th) ─────────────────┘
                                            (a success from FAILING(n) goes back to UP)

With ``rise == 1`` (or ``fall == 1``) there is no RISING (FAILING) phase: one result flips.
Any pair not in the table (``RISING(5)`` when ``rise == 3``, ``FAILING(0)``) is a lookup miss
that raises ``IllegalTransition``: it can only come from a bug, never from the network.

Initial state: a new real server starts DOWN(0) and must pass ``rise`` checks in a row before
it takes traffic. HAProxy starts servers up instead, which suits a proxy that retries a
failed connection on another server; in the kernel (L4 NAT or DSR) a packet sent to a dead
server is simply lost, so a server proves itself first. A caller that already knows a
server is serving (the daemon adopting the maps of a previous run) starts it UP(0) with
``initial_state(up=True)`` and so does not drop it while its first checks run.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bascule.model.check import HealthCheck


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """What one probe saw: the verdict, a code, a word for a person, how long it took.

    ``code`` is the HTTP status for http/https, the DNS RCODE for dns, None otherwise.
    ``duration_ms`` is measured on a monotonic clock; ``checked_at`` is wall-clock seconds
    since the epoch (for display), when the probe started.
    """

    ok: bool
    code: int | None
    detail: str
    duration_ms: float
    checked_at: float


class Phase(enum.Enum):
    """Where a real server is in its rise/fall cycle."""

    DOWN = "down"  # down, no success counted
    RISING = "rising"  # down, ``count`` successes in a row (1..rise-1)
    UP = "up"  # up, no failure counted
    FAILING = "failing"  # up, ``count`` failures in a row (1..fall-1)


class Event(enum.Enum):
    """What a check result means to the machine."""

    SUCCESS = "success"
    FAILURE = "failure"


UP_PHASES = frozenset({Phase.UP, Phase.FAILING})


@dataclass(frozen=True, kw_only=True)
class CheckState:
    """One state of the machine: a phase and its count of disagreeing results."""

    phase: Phase
    count: int = 0

    @property
    def up(self) -> bool:
        """True while the server takes traffic (UP, or FAILING but not yet ``fall`` times)."""
        return self.phase in UP_PHASES

    def __str__(self) -> str:
        return f"{self.phase.value}({self.count})" if self.count else self.phase.value


DOWN = CheckState(phase=Phase.DOWN)
UP = CheckState(phase=Phase.UP)

TransitionTable = Mapping[tuple[CheckState, Event], CheckState]


class IllegalTransition(LookupError):
    """A (state, event) pair that the table of these thresholds does not hold: a bug."""


def _rising(count: int) -> CheckState:
    return CheckState(phase=Phase.RISING, count=count)


def _failing(count: int) -> CheckState:
    return CheckState(phase=Phase.FAILING, count=count)


@functools.cache
def transition_table(rise: int, fall: int) -> TransitionTable:
    """The whole machine for these thresholds, as a read-only mapping.

    ``rise``: successes in a row that bring a down server up; ``fall``: failures in a row
    that take an up server down (``HealthCheck.rise`` and ``.fall``, both at least 1).
    """
    if rise < 1 or fall < 1:
        raise ValueError(f"rise and fall must be at least 1, not rise={rise} fall={fall}")
    success, failure = Event.SUCCESS, Event.FAILURE
    table: dict[tuple[CheckState, Event], CheckState] = {}

    # Down: successes climb towards ``rise``; any failure starts the climb again.
    climb = [DOWN, *(_rising(n) for n in range(1, rise))]
    for state, after in zip(climb, [*climb[1:], UP], strict=True):
        table[state, success] = after
        table[state, failure] = DOWN

    # Up: failures descend towards ``fall``; any success restores full health.
    descent = [UP, *(_failing(n) for n in range(1, fall))]
    for state, after in zip(descent, [*descent[1:], DOWN], strict=True):
        table[state, failure] = after
        table[state, success] = UP
    return MappingProxyType(table)


def initial_state(*, up: bool = False) -> CheckState:
    """Where a newly checked server starts: DOWN(0) unless it is known to be serving."""
    return UP if up else DOWN


def event_of(result: CheckResult) -> Event:
    return Event.SUCCESS if result.ok else Event.FAILURE


def next_state(state: CheckState, event: Event, *, rise: int, fall: int) -> CheckState:
    """The state after ``event``; raises IllegalTransition for a state these thresholds lack."""
    try:
        return transition_table(rise, fall)[state, event]
    except KeyError:
        raise IllegalTransition(
            f"no transition from {state} on {event.value} with rise={rise} fall={fall}"
        ) from None


def advance(state: CheckState, result: CheckResult, check: HealthCheck) -> CheckState:
    """The state after ``result`` under the thresholds of ``check``."""
    return next_state(state, event_of(result), rise=check.rise, fall=check.fall)


def carry_over(state: CheckState) -> CheckState:
    """The state to keep when a server's check changes: its verdict, without the count.

    A count means "n of rise (or fall)" under the old thresholds and may not exist in the
    new table, so it is dropped; the verdict is kept, so that editing a check does not pull
    every server out of the maps.
    """
    return UP if state.up else DOWN
