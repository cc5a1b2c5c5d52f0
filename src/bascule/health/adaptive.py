"""Adaptive scheduling: real-server agent answers -> effective weights (pure, no I/O).

Where it sits: the agent poller (agent.py) fetches each real server's load over HTTP, the
daemon (daemon/dynamic.py) hands the readings to ``adaptive_weights``, and the resulting
``WeightOverride`` values reach the planner, which turns them into runtime ``set weight``
commands (no reload) and keeps them on later passes.

The agent speaks LoadMaster's protocol: the first line of its answer is an integer, 0 (idle)
to 100 (overloaded); 101 means the server is down, 102 that it is administratively disabled.

The formula, per real server with configured weight ``w`` and reported load ``L``::

    factor = max(MIN_FACTOR, (100 - L) / 100)     # 10 % -> 0.9, 50 % -> 0.5, 90 % -> 0.1
    effective = w * factor

and the effective weights are scaled so the largest becomes the engine's ceiling (HAProxy:
256), none below 1. A server at 80 % thus gets a quarter of the weight of one at 20 %. An
agent that does not answer (or answers nonsense) leaves the server its static weight
(factor 1). While the average load of the answering servers is below ``min_percent`` the
service runs weighted round robin on the configured weights (no override at all).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from bascule.model.weights import engine_weights
from bascule.reconcile.planner import WeightOverride
from bascule.reconcile.status import ServerStatus

LOAD_DOWN = 101
LOAD_DISABLED = 102
# A fully loaded server keeps a trickle (1/50 of an idle one's weight) rather than none: the
# agent's figure is a sample, and a server that gets nothing can never show it recovered.
MIN_FACTOR = 0.02


class AgentVerdict(enum.Enum):
    load = "load"  # 0..100
    down = "down"  # 101
    disabled = "disabled"  # 102
    no_answer = "no_answer"  # no connection, timeout, HTTP error, unreadable first line


@dataclass(frozen=True, kw_only=True)
class AgentReading:
    """One poll of one agent: a verdict, the load when there is one, and why it failed."""

    verdict: AgentVerdict
    load: int | None = None
    detail: str = ""


def parse_agent_answer(body: str) -> AgentReading:
    """Read an agent's answer body: its first line must be an integer 0..102."""
    first = body.strip().splitlines()[0].strip() if body.strip() else ""
    try:
        value = int(first)
    except ValueError:
        shown = first[:40] or "an empty answer"
        return AgentReading(verdict=AgentVerdict.no_answer, detail=f"unreadable: {shown!r}")
    if 0 <= value <= 100:
        return AgentReading(verdict=AgentVerdict.load, load=value)
    if value == LOAD_DOWN:
        return AgentReading(verdict=AgentVerdict.down, load=value)
    if value == LOAD_DISABLED:
        return AgentReading(verdict=AgentVerdict.disabled, load=value)
    return AgentReading(verdict=AgentVerdict.no_answer, detail=f"out of range: {value}")


def load_factor(load: int) -> float:
    """The share of its configured weight a server at ``load`` % keeps."""
    return max(MIN_FACTOR, (100 - min(max(load, 0), 100)) / 100)


def scale_to_ceiling(raw: Mapping[str, float], ceiling: int) -> dict[str, int]:
    """Scale positive weights so the largest becomes ``ceiling``; none below 1."""
    if not raw:
        return {}
    largest = max(raw.values())
    if largest <= 0:
        return dict.fromkeys(raw, 1)
    return {key: max(1, round(value * ceiling / largest)) for key, value in raw.items()}


def adaptive_weights(
    weights: Mapping[str, int],
    readings: Mapping[str, AgentReading | None],
    *,
    min_percent: int,
    ceiling: int,
) -> dict[str, WeightOverride]:
    """The override of every real server (by key) from its configured weight and reading.

    Servers without a reading yet (``None``) count as not answering. While the average load
    of the answering agents is below ``min_percent`` every server keeps the engine weight the
    document gives it (weighted round robin), the reason saying so.
    """
    known = {key: readings.get(key) for key in weights}
    loads = {
        key: r.load
        for key, r in known.items()
        if r is not None and r.verdict is AgentVerdict.load and r.load is not None
    }
    average = sum(loads.values()) / len(loads) if loads else 0.0
    low = not loads or average < min_percent
    if low:
        base = engine_weights(weights, ceiling, weighted=True)
    else:
        # Servers taken out (101, 102) take no part in the scaling.
        raw = {
            key: weight * load_factor(loads[key]) if key in loads else float(weight)
            for key, weight in weights.items()
            if _verdict(known[key]) not in (AgentVerdict.down, AgentVerdict.disabled)
        }
        base = {**dict.fromkeys(weights, 1), **scale_to_ceiling(raw, ceiling)}
    result: dict[str, WeightOverride] = {}
    for key, reading in known.items():
        verdict = _verdict(reading)
        if verdict is AgentVerdict.down:
            result[key] = WeightOverride(
                weight=base[key], out=ServerStatus.down, reason="agent reports 101: down"
            )
            continue
        if verdict is AgentVerdict.disabled:
            result[key] = WeightOverride(
                weight=base[key],
                out=ServerStatus.disabled,
                reason="agent reports 102: administratively disabled",
            )
            continue
        if key in loads:
            reason = f"agent load {loads[key]} %"
            if low:
                reason += (
                    f" (average {average:.0f} % below min_percent {min_percent} %: "
                    "configured weight)"
                )
        else:
            detail = reading.detail if reading is not None else "no answer yet"
            reason = f"agent not answering ({detail}): static weight"
        result[key] = WeightOverride(weight=base[key], reason=reason)
    return result


def _verdict(reading: AgentReading | None) -> AgentVerdict:
    return reading.verdict if reading is not None else AgentVerdict.no_answer
