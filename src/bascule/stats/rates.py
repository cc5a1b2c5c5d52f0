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

# every counter name read so far and its place in each ``CounterRates``' columns, shared by all
# (a real server's track has the same four names as the 9,999 others)
_POSITIONS: dict[str, int] = {}


def increase(previous: float, current: float) -> float:
    """What a monotonic counter counted between two readings; a decrease is a reset."""
    return current - previous if current >= previous else current


class CounterRates:
    """The last reading of each named counter of one object or of many (``track``, a number
    from 0), turning the next reading into a rate."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        # per counter name (at its place): the (timestamp, total) of each track in one array of
        # doubles, not a dict of tuples per object (10,000 real servers kept 50,000 tuples and
        # their numbers); NaN: not read. A total is exact up to 2**53 (8 PiB of bytes).
        self._last: list[array[float] | None] = []

    def update(self, name: str, timestamp: float, total: float, track: int = 0) -> float | None:
        """The rate per second of ``name`` since its previous reading, None for the first
        reading or when time did not move forward (a clock step back restarts the counter)."""
        last = self._column(_POSITIONS.setdefault(name, len(_POSITIONS)))
        place = 2 * track
        if place >= len(last):
            last.extend(array("d", (math.nan,)) * (place + 2 - len(last)))
        before, previous = last[place], last[place + 1]
        last[place] = timestamp
        last[place + 1] = total
        if math.isnan(before):
            return None
        elapsed = timestamp - before
        if elapsed <= 0:
            return None
        return increase(previous, total) / elapsed

    def _column(self, position: int) -> array[float]:
        """The readings of the counter at ``position``, made at its first."""
        if position >= len(self._last):
            self._last.extend([None] * (position + 1 - len(self._last)))
        column = self._last[position]
        if column is None:
            column = self._last[position] = array("d")
        return column

    def forget(self, name: str, track: int = 0) -> None:
        place = _POSITIONS.get(name)
        if place is not None and place < len(self._last):
            column = self._last[place]
            if column is not None and 2 * track < len(column):
                column[2 * track] = math.nan

    def __contains__(self, name: object) -> bool:
        """Whether counter ``name`` (of track 0) has a reading: its next one gives a rate."""
        place = _POSITIONS.get(name) if isinstance(name, str) else None
        column = self._last[place] if place is not None and place < len(self._last) else None
        return column is not None and len(column) > 0 and not math.isnan(column[0])
