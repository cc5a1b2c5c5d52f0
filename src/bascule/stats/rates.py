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


def increase(previous: float, current: float) -> float:
    """What a monotonic counter counted between two readings; a decrease is a reset."""
    return current - previous if current >= previous else current


class CounterRates:
    """The last reading of each named counter, turning the next reading into a rate."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        # (timestamp, total): a tuple, the smallest record (one per counter of every tracked
        # object: 10,000 real servers keep 50,000)
        self._last: dict[str, tuple[float, float]] = {}

    def update(self, name: str, timestamp: float, total: float) -> float | None:
        """The rate per second of ``name`` since its previous reading, None for the first
        reading or when time did not move forward (a clock step back restarts the counter)."""
        previous = self._last.get(name)
        self._last[name] = (timestamp, total)
        if previous is None:
            return None
        elapsed = timestamp - previous[0]
        if elapsed <= 0:
            return None
        return increase(previous[1], total) / elapsed

    def forget(self, name: str) -> None:
        self._last.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._last
