"""Purging a service's cache at run time (``bascule cache purge VS``), from every door.

Where it sits: beside ``ConfigService`` (daemon/service.py), under the API's
``/virtual-services/{name}/cache/purge`` (the CLI goes through it). It finds the engine that
runs the service's cache (the HAProxy engine: ``CachePurge``), and asks it, under the
reconciler's lock (a reload never crosses it), to give the cache a new generation: no request
finds an entry stored before the purge, and the next one for each URL reaches a real server
(engines/haproxy/caching.py says how). No reload, nothing else of the service changes; the
purge is recorded in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bascule.daemon.service import ConfigService
from bascule.errors import NotApplicable, NotFound
from bascule.model import Configuration
from bascule.model.access import Actor


@runtime_checkable
class CachePurge(Protocol):
    """An engine that keeps services' caches and can purge one (the HAProxy engine)."""

    name: str

    async def purge_cache(self, applied: Configuration | None, name: str) -> bool: ...


@dataclass(frozen=True, kw_only=True)
class CachePurged:
    service: str
    # False: the service's cache is not running (HAProxy down, or the change not applied yet);
    # the generation is kept for the next start
    running: bool


async def purge_cache(config: ConfigService, name: str, *, actor: Actor) -> CachePurged:
    """Purge the cache of virtual service ``name``, or of a sub-service (``site/api``);
    NotFound / NotApplicable otherwise."""
    vs = config.desired().pool(name)
    if vs is None:
        raise NotFound(f"there is no virtual service or sub-service named {name!r}")
    if vs.cache is None:
        raise NotApplicable(f"{name!r} has no cache (give it a cache section)")
    engine = next((e for e in config.engines if isinstance(e, CachePurge)), None)
    if engine is None:
        raise NotApplicable("no engine of this daemon keeps a cache")
    async with config.reconciler.lock:
        running = await engine.purge_cache(config.reconciler.running(engine.name), name)
    if config.audit is not None:
        detail = "purged" if running else "not running: purged from its next start"
        config.audit.record(actor, "cache.purge", name, detail=detail)
    return CachePurged(service=name, running=running)
