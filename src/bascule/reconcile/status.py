"""The words of the status: what a virtual service and a real server are reported as (pure).

The end of the flow of a change as the doors show it (DESIGN.md, "Statuses"): the daemon's
``status.py`` decides each status from the document and the engines' observations, the API,
the WUI, ``/metrics`` and the statistics report them. They are ``StrEnum`` members, so JSON,
templates and metric labels carry exactly these words. They live here, below the engines and
the daemon, because a dynamic scheduler's decision (``planner.WeightOverride.out``) already
names the status a server takes.
"""

from __future__ import annotations

import enum


class ServiceStatus(enum.StrEnum):
    """A virtual service's status; ``apply_error`` is the control plane's, the rest the data
    plane's (kept apart as DESIGN.md asks)."""

    up = "up"  # every enabled real server is up
    degraded = "degraded"  # some are down
    down = "down"  # none is up (or a critical one is down, or the engine is not running)
    sorry = "sorry"  # none is up and not_available answers (sorry server, page or redirect)
    disabled = "disabled"  # the document disables the service
    unchecked = "unchecked"  # no health check: served, but nobody knows whether it works
    apply_error = "apply_error"  # the last change could not be applied (the engine's message)

    @property
    def serving(self) -> bool:
        """Whether the service takes traffic in this status."""
        return self in _SERVING


_SERVING = frozenset({ServiceStatus.up, ServiceStatus.degraded, ServiceStatus.unchecked})


class ServerStatus(enum.StrEnum):
    """A real server's status."""

    up = "up"  # its checks pass and it takes new connections
    down = "down"  # its checks fail (or the engine does not run it)
    drain = "drain"  # the document drains it: open connections finish, no new ones
    disabled = "disabled"  # the document (or a dynamic scheduler's agent) takes it out
    unchecked = "unchecked"  # no health check
