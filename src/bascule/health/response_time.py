"""Weighted response time: health-check durations -> effective weights (pure, no I/O).

Where it sits: the daemon (daemon/dynamic.py) samples each real server's last check duration
from the engine (HAProxy ``show stat`` ``check_duration``) once per check interval, smooths it
here (``ewma``) and turns the smoothed times into ``WeightOverride`` values with
``response_time_weights``; the planner applies them through the runtime API (no reload).

The formula, per real server with configured weight ``w`` and smoothed check time ``t`` (ms),
``t_min`` being the fastest server's::

    factor = clamp((t_min + BASELINE_MS) / (t + BASELINE_MS), MIN_FACTOR, 1)
    effective = w * factor

scaled so the largest becomes the engine's ceiling (HAProxy: 256), none below 1. The baseline
keeps sub-millisecond jitter on a fast network from moving weights (1 ms against 3 ms is
11/13, not 1/3); ``MIN_FACTOR`` keeps a slow server from being starved (it keeps at least a
tenth of the fastest one's weight), so it is still sampled by real traffic and can win its
share back, and the fastest cannot take more than its bounded share. A server with no sample
(not checked yet, or down) keeps its configured weight.
"""

from __future__ import annotations

from collections.abc import Mapping

from bascule.health.adaptive import scale_to_ceiling
from bascule.reconcile.planner import WeightOverride

ALPHA = 0.5  # weight of the newest sample: a change shows within a few check intervals
BASELINE_MS = 10.0
MIN_FACTOR = 0.1


def ewma(previous: float | None, sample: float, *, alpha: float = ALPHA) -> float:
    """Exponentially weighted moving average; the first sample starts it."""
    if previous is None:
        return float(sample)
    return alpha * sample + (1 - alpha) * previous


def time_factor(time_ms: float, fastest_ms: float) -> float:
    """The share of its configured weight a server answering in ``time_ms`` keeps."""
    factor = (fastest_ms + BASELINE_MS) / (max(time_ms, 0.0) + BASELINE_MS)
    return min(1.0, max(MIN_FACTOR, factor))


def response_time_weights(
    weights: Mapping[str, int], smoothed: Mapping[str, float | None], *, ceiling: int
) -> dict[str, WeightOverride]:
    """The override of every real server (by key) from its configured weight and check time."""
    times = {key: t for key, t in smoothed.items() if key in weights and t is not None}
    fastest = min(times.values()) if times else 0.0
    raw = {
        key: weight * time_factor(times[key], fastest) if key in times else float(weight)
        for key, weight in weights.items()
    }
    scaled = scale_to_ceiling(raw, ceiling)
    result: dict[str, WeightOverride] = {}
    for key in weights:
        if key in times:
            reason = f"check time {times[key]:.0f} ms (EWMA)"
        else:
            reason = "no check time yet: configured weight"
        result[key] = WeightOverride(weight=scaled[key], reason=reason)
    return result
