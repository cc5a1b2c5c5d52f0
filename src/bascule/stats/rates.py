"""Per-second rates from counters that only ever grow, surviving counter resets.

The engines report totals (connections, requests, bytes, packets) since their data plane
started; a graph wants rates. A rate is the increase between two samples over the time between
them. A total that goes down means the counter restarted from zero (an HAProxy reload starts
fresh workers, an nftables ruleset is replaced, a real server was removed and added again):
as Prometheus's ``rate()`` does, the increase is then the new total itself, counted from the
reset. That is never negative and never more than what really happened since the last sample,
so a reload shows neither a dip below zero nor a spike. Pure: timestamps are passed in.
"""

from __future__ import annotations

import math
from array import array

# every counter name read so far and its place in the readings' arrays, shared by all (a real
# server's track has the same five names as the 9,999 others)
_POSITIONS: dict[str, int] = {}


def increase(previous: float, current: float) -> float:
    """What a monotonic counter counted between two readings; a decrease is a reset."""
    return current - previous if current >= previous else current


class CounterRates:
    """The last reading of each named counter, turning the next reading into a rate."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        # (timestamp, total) of each counter at its name's place: one array of doubles, not a
        # dict of tuples (10,000 real servers kept 50,000 tuples and their numbers); NaN: not
        # read. A total is exact up to 2**53 (8 PiB of bytes).
        self._last = array("d")

    def update(self, name: str, timestamp: float, total: float) -> float | None:
        """The rate per second of ``name`` since its previous reading, None for the first
        reading or when time did not move forward (a clock step back restarts the counter)."""
        place = 2 * _POSITIONS.setdefault(name, len(_POSITIONS))
        last = self._last
        if place >= len(last):
            last.extend([math.nan] * (place + 2 - len(last)))
        before, previous = last[place], last[place + 1]
        last[place] = timestamp
        last[place + 1] = total
        if math.isnan(before):
            return None
        elapsed = timestamp - before
        if elapsed <= 0:
            return None
        return increase(previous, total) / elapsed

    def forget(self, name: str) -> None:
        place = _POSITIONS.get(name)
        if place is not None and 2 * place < len(self._last):
            self._last[2 * place] = math.nan

    def __contains__(self, name: object) -> bool:
        place = _POSITIONS.get(name) if isinstance(name, str) else None
        return (
            place is not None
            and 2 * place < len(self._last)
            and not math.isnan(self._last[2 * place])
        )
