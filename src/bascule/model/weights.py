"""Map LoadMaster weights (1..65535) onto an engine's smaller range, keeping the ratios."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def scale_weights(weights: Sequence[int], ceiling: int) -> tuple[int, ...]:
    """Scale ``weights`` into ``1..ceiling`` keeping their ratios as exactly as possible.

    Weights are first divided by their greatest common divisor, so 3000:1000 becomes the
    exact 3:1. When the reduced weights still exceed ``ceiling`` they are scaled so the
    largest becomes ``ceiling`` and rounded to the nearest integer, never below 1 (a weight of
    0 would mean "drain" to the engine).
    """
    if not weights:
        return ()
    if ceiling < 1 or any(w < 1 for w in weights):
        raise ValueError("weights and ceiling must be positive")
    divisor = math.gcd(*weights)
    reduced = [w // divisor for w in weights]
    largest = max(reduced)
    if largest <= ceiling:
        return tuple(reduced)
    return tuple(max(1, round(w * ceiling / largest)) for w in reduced)


def engine_weights(weights: Mapping[str, int], ceiling: int, *, weighted: bool) -> dict[str, int]:
    """The engine weight of each real server (by key) under an engine ``ceiling``.

    ``weighted``: whether the weights count (``Scheduler.weighted``); when they do not, every
    server gets 1, else LoadMaster's weights are scaled. Drain and disable are states, not
    weights: they do not take part here, so draining one server never changes another's
    weight.
    """
    keys = list(weights)
    if not weighted:
        return dict.fromkeys(keys, 1)
    return dict(zip(keys, scale_weights([weights[k] for k in keys], ceiling), strict=True))
