"""The daemon's dynamic schedulers: ``adaptive`` (agents) and ``weighted_response_time``.

Where it sits: like daemon/l4.py it connects siblings the engines may not import. Once per
``TICK`` ``DynamicScheduler.run`` looks at the current revision; every ``adaptive.interval``
seconds it polls the agents of each adaptive service (health/agent.py), every
``check.interval`` seconds it samples the check durations HAProxy reports for each
weighted-response-time service; the pure cores (health/adaptive.py, health/response_time.py)
turn those into ``WeightOverride`` values. When they change it asks the service layer to
reconcile: the planner takes the overrides as the desired runtime weights (reconcile/
planner.py), so the 5-second repair loop keeps them rather than setting the document's weights
back, and the change goes out as runtime ``set weight`` commands, with no reload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from bascule.engines.base import EngineObservation, Health
from bascule.errors import BasculeError
from bascule.health.adaptive import AgentReading, adaptive_weights
from bascule.health.agent import agent_url, poll_agents
from bascule.health.response_time import ewma, response_time_weights
from bascule.model import Adaptive, Configuration, Scheduler, VirtualService
from bascule.reconcile.planner import ServerRef, WeightOverride

log = logging.getLogger("bascule.daemon.dynamic")

TICK = 0.5  # seconds between two looks at what is due
MAX_AGENT_TIMEOUT = 2.0

PollAgents = Callable[..., Awaitable[Mapping[str, AgentReading]]]


class DynamicSchedulerHost(Protocol):
    """What the scheduler needs from the service layer (daemon/service.py)."""

    def desired(self) -> Configuration: ...

    async def observe(self) -> EngineObservation: ...

    async def reconcile(self, *, retry_failed: bool = True) -> tuple[bool, str]: ...


def is_dynamic(vs: VirtualService) -> bool:
    return vs.enabled and vs.scheduler.dynamic


class DynamicScheduler:
    """Keeps the effective weights of the dynamically scheduled services."""

    def __init__(
        self,
        *,
        ceiling: int,
        poll: PollAgents = poll_agents,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling = ceiling
        self._poll = poll
        self._clock = clock
        self._readings: dict[ServerRef, AgentReading] = {}
        self._times: dict[ServerRef, float] = {}
        self._due: dict[str, float] = {}  # virtual service name -> next poll or sample
        self._overrides: dict[ServerRef, WeightOverride] = {}

    def overrides(self) -> Mapping[ServerRef, WeightOverride]:
        """The current effective weights, for the planner and the status."""
        return dict(self._overrides)

    async def step(self, host: DynamicSchedulerHost) -> bool:
        """Poll and sample whatever is due, recompute; True when the overrides changed."""
        desired = host.desired()
        services = [vs for vs in desired.virtual_services if is_dynamic(vs)]
        self._forget_others(services)
        now = self._clock()
        due = [vs for vs in services if now >= self._due.get(vs.name, 0.0)]
        adaptive = [vs for vs in due if vs.scheduler is Scheduler.adaptive]
        timed = [vs for vs in due if vs.scheduler is Scheduler.weighted_response_time]
        if adaptive:
            await asyncio.gather(*(self._poll_service(vs) for vs in adaptive))
        if timed:
            self._sample(timed, await host.observe())
        for vs in due:
            interval = _agent(vs).interval if vs.scheduler is Scheduler.adaptive else None
            self._due[vs.name] = now + (interval or vs.check.interval)
        overrides: dict[ServerRef, WeightOverride] = {}
        for vs in services:
            weights = {rs.key: rs.weight for rs in vs.real_servers}
            if vs.scheduler is Scheduler.adaptive:
                decided = adaptive_weights(
                    weights,
                    {key: self._readings.get((vs.name, key)) for key in weights},
                    min_percent=_agent(vs).min_percent,
                    ceiling=self.ceiling,
                )
            else:
                decided = response_time_weights(
                    weights,
                    {key: self._times.get((vs.name, key)) for key in weights},
                    ceiling=self.ceiling,
                )
            overrides.update({(vs.name, key): o for key, o in decided.items()})
        changed = overrides != self._overrides
        self._overrides = overrides
        return changed

    async def run(self, host: DynamicSchedulerHost) -> None:
        """Forever: a step every TICK, a reconcile whenever the weights changed."""
        while True:
            try:
                if await self.step(host):
                    await host.reconcile(retry_failed=False)
            except (BasculeError, OSError) as exc:
                log.error("dynamic scheduling failed", extra={"error": str(exc)})
            await asyncio.sleep(TICK)

    async def _poll_service(self, vs: VirtualService) -> None:
        agent = _agent(vs)
        urls = [(rs.key, agent_url(rs.address, agent.port, agent.url)) for rs in vs.real_servers]
        timeout = min(MAX_AGENT_TIMEOUT, float(agent.interval))
        readings = await self._poll(urls, wait=timeout)
        for key, reading in readings.items():
            self._readings[(vs.name, key)] = reading

    def _sample(self, services: list[VirtualService], observation: EngineObservation) -> None:
        for vs in services:
            for rs in vs.real_servers:
                ref = (vs.name, rs.key)
                seen = observation.servers.get(ref)
                # Only a passing check's duration says how fast the server answers.
                if seen is None or seen.health is not Health.up or seen.check_duration_ms is None:
                    continue
                self._times[ref] = ewma(self._times.get(ref), seen.check_duration_ms)

    def _forget_others(self, services: list[VirtualService]) -> None:
        """Drop the state of servers and services no longer dynamically scheduled."""
        keep = {(vs.name, rs.key) for vs in services for rs in vs.real_servers}
        names = {vs.name for vs in services}
        for table in (self._readings, self._times):
            for ref in [ref for ref in table if ref not in keep]:
                del table[ref]
        for name in [name for name in self._due if name not in names]:
            del self._due[name]


def _agent(vs: VirtualService) -> Adaptive:
    return vs.adaptive or Adaptive()
