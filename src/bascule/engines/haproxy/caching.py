"""A service's ``cache`` and ``compression`` as HAProxy lines (configuration manual 6 and 4.2).

Where this sits in the flow of a change: ``view.py`` asks ``caching_view`` for a service's
lines, prints its rules and options in the service's ``listen`` section and its cache as a
``cache`` section of its own. Pure.

- the cache (6.2): ``cache <service>_cache`` with ``total-max-size`` (MB),
  ``max-object-size`` (bytes) and ``max-age`` (the longest keep; a response's own
  ``s-maxage``/``max-age`` wins when shorter), ``process-vary on`` (responses that vary on
  ``Accept-Encoding`` or ``Referer`` are kept per variant; on any other header, not kept);
  ``http-request cache-use`` after the content rules (a rule's answer or redirect goes first)
  and ``http-response cache-store``; ``X-Cache: HIT|MISS`` from ``res.cache_hit`` in
  ``http-after-response``, which also runs on the answers the cache builds itself.
- the purge (``bascule cache purge``): HAProxy 2.6 has no command that empties a cache, and
  its key is a hash of the ``Host`` header and the URI (6). So the ``Host`` the cache sees is
  prefixed with the service's generation, ``g<generation>.<host>``, read from a map file
  (``<service> <generation>``) that the runtime API changes (``set map``) without a reload:
  after a purge no request finds an entry stored before it, and the old entries age out
  (``max_age``) or are evicted first when space runs short. The real ``Host`` is put back
  right after ``cache-use``, so the content rules before it, the real servers and the logs
  see the client's own.
- a sub-service's cache (its own ``cache``) is its ``backend``'s: the same lines there, in a
  ``cache <service>_<sub-service>_cache`` section, with the generation of ``<service>_<sub>``
  in the map. The service's cache then leaves the requests of the rules that send to such a
  sub-service alone (``unless`` the matched rule is one of them), so each response is kept in
  one cache only.
- compression (4.2 "compression"): ``compression algo`` and ``compression type``; HAProxy
  compresses only for a client whose ``Accept-Encoding`` accepts the algorithm, never a
  response that is already encoded, and (2.6) has no minimum size.
"""

from __future__ import annotations

from dataclasses import dataclass

from bascule.engines.haproxy.content import RULE_VAR
from bascule.engines.haproxy.persistence import section_name
from bascule.engines.haproxy.quoting import token
from bascule.model import VirtualService

CACHE_SUFFIX = "_cache"
# where the Host header waits while the cache looks the request up (a transaction variable)
HOST_VARIABLE = "txn.bascule_host"
#: the generation of a service the map file does not list (yet)
FIRST_GENERATION = "0"


@dataclass(frozen=True, kw_only=True)
class CachingView:
    options: tuple[str, ...] = ()
    request_rules: tuple[str, ...] = ()
    response_rules: tuple[str, ...] = ()
    section: tuple[str, tuple[str, ...]] | None = None


def cache_name(vs: VirtualService) -> str:
    """The cache of a service, or of a sub-service pool (``site_api_cache``)."""
    return token(f"{section_name(vs)}{CACHE_SUFFIX}")


def generation_key(vs: VirtualService) -> str:
    """A pool's key in the generations map: its section's name (``site``, ``site_api``)."""
    return token(section_name(vs))


def caching_view(
    vs: VirtualService, generations_map: str, *, own_caches: tuple[int, ...] = ()
) -> CachingView:
    """``generations_map``: the map file of the services' cache generations (the purge);
    ``own_caches``: the numbers of the rules whose sub-service keeps its own cache."""
    options: list[str] = []
    compression = vs.compression
    if compression is not None:
        options.append(f"compression algo {' '.join(a.value for a in compression.algorithms)}")
        # media types are validated tokens (model/caching.py): printed as they are
        options.append(f"compression type {' '.join(compression.types)}")
    cache = vs.cache
    if cache is None:
        return CachingView(options=tuple(options))
    name = cache_name(vs)
    guard = f" !{{ var({RULE_VAR}) -m int {' '.join(map(str, own_caches))} }}" if own_caches else ""
    unless = f" if{guard}" if guard else ""
    response = [f"http-response cache-store {name}{unless}"]
    if cache.x_cache_header:
        response.append("http-after-response set-header X-Cache %[res.cache_hit,iif(HIT,MISS)]")
    lines = (
        f"total-max-size {cache.size_mb}",
        f"max-object-size {cache.max_object_kb * 1024}",
        f"max-age {cache.max_age}",
        "process-vary on",
    )
    return CachingView(
        options=tuple(options),
        request_rules=(
            f"http-request set-var({HOST_VARIABLE}) req.hdr(host) "
            f"if {{ req.hdr(host) -m found }}{guard}",
            "http-request set-header Host "
            f"g%[str({generation_key(vs)}),map({token(generations_map)},"
            f"{FIRST_GENERATION})].%[req.hdr(host)] if {{ req.hdr(host) -m found }}{guard}",
            f"http-request cache-use {name}{unless}",
            f"http-request set-header Host %[var({HOST_VARIABLE})] "
            f"if {{ var({HOST_VARIABLE}) -m found }}",
        ),
        response_rules=tuple(response),
        section=(name, lines),
    )
