"""Statistics: in-memory time series of the virtual services and real servers (pure).

The last step of the flow of a change as DESIGN.md draws it (status & stats): the daemon samples
the status and records readings here; the API and the WUI read windows back. No I/O, no clock.
"""

from bascule.stats.rates import CounterRates, increase
from bascule.stats.ring import Points, Ring
from bascule.stats.tracks import (
    DAY,
    HOUR,
    SPARKLINE_POINTS,
    WINDOWS,
    Metric,
    Reading,
    ServiceReading,
    ServiceSeries,
    Tracks,
    Window,
)

__all__ = [
    "DAY",
    "HOUR",
    "SPARKLINE_POINTS",
    "WINDOWS",
    "CounterRates",
    "Metric",
    "Points",
    "Reading",
    "Ring",
    "ServiceReading",
    "ServiceSeries",
    "Tracks",
    "Window",
    "increase",
]
