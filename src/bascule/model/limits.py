"""Connection and request limits of a virtual service, per service and per client (pure).

``limits`` says how many connections a service takes at once and per second, and how many
connections, new connections per second and HTTP requests per second one client (one source
address) may have; a client over its limit is answered ``response.code`` (429 or 503) with
``Retry-After`` on an ``l7`` service. ``exempt`` names access lists whose clients are never
limited. The engines enforce it: HAProxy's stick tables on ``l7`` services
(``engines/haproxy/limits.py``), the kernel's meters on ``l4`` NAT services, where a limited
client's new connections are dropped (``engines/nftables/access.py``).

A content rule's ``limits`` and a sub-service's have the same shape and count HTTP requests
only: a rule's, the requests it matches; a sub-service's, the requests that reach its pool
(HAProxy tracks them by ``http-request``, one table each). Connections are the service's, not a
rule's or a pool's (one keep-alive connection carries requests that match different rules and
go to different pools), so the connection limits are refused there with their field path. Their
``response`` is their own when given, else the service's ``limits.response``; their ``exempt``
lists are their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from bascule.errors import FieldError
from bascule.model.capabilities import Mode
from bascule.model.real_server import Forwarding
from bascule.model.types import Name
from bascule.model.types import bounded as _bounded

if TYPE_CHECKING:
    from bascule.model.document import Configuration
    from bascule.model.virtual_service import VirtualService

#: The highest limit the document takes (HAProxy's counters are 32-bit; far above any machine).
MAX_LIMIT = 10_000_000
#: The answers a limited client of an http service may get.
RESPONSE_CODES = (429, 503)

Limit = _bounded(1, MAX_LIMIT)


def _code(value: Any) -> Any:
    if isinstance(value, bool) or value not in RESPONSE_CODES:
        raise ValueError("must be 429 (too many requests) or 503 (service unavailable)")
    return value


class LimitResponse(BaseModel):
    """What a limited client of an http service is answered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Annotated[int, BeforeValidator(_code)] = 429
    retry_after: _bounded(1, 86400) | None = None  # type: ignore[valid-type]


def _no_bandwidth(value: Any) -> Any:
    if value is not None:
        raise ValueError("is not supported yet (neither engine limits a client's bandwidth)")
    return value


class PerClient(BaseModel):
    """The limits of one client (one source address)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connections: Limit | None = None  # type: ignore[valid-type]
    connections_per_second: Limit | None = None  # type: ignore[valid-type]
    requests_per_second: Limit | None = None  # type: ignore[valid-type]
    bandwidth: Annotated[Any, BeforeValidator(_no_bandwidth)] = None

    @property
    def any(self) -> bool:
        return any(
            value is not None
            for value in (self.connections, self.connections_per_second, self.requests_per_second)
        )


class Limits(BaseModel):
    """A service's limits (``virtual_services[].limits``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_connections: Limit | None = None  # type: ignore[valid-type]
    connections_per_second: Limit | None = None  # type: ignore[valid-type]
    per_client: PerClient | None = None
    response: LimitResponse = Field(default_factory=LimitResponse)
    exempt: list[Name] = Field(default_factory=list)

    @property
    def per_client_limited(self) -> bool:
        return self.per_client is not None and self.per_client.any

    def answer(self, service: Limits | None) -> LimitResponse:
        """What a client over a rule's or sub-service's limit gets: this ``response`` when the
        document gives one, else the service's (``service``: its ``limits``)."""
        if "response" in self.model_fields_set or service is None:
            return self.response
        return service.response


#: What a rule's or sub-service's limits may not say, and why.
_REQUESTS_ONLY = (
    "not here: a rule's or sub-service's limits count HTTP requests "
    "(per_client.requests_per_second); a client's connections are the service's (one "
    "keep-alive connection carries requests for several rules and pools): set it in the "
    "service's limits"
)


def exempt_names(vs: VirtualService) -> set[str]:
    """The access lists a service's limits exempt: its own, its rules' and sub-services'."""
    holders = [vs.limits, *(r.limits for r in vs.rules), *(s.limits for s in vs.sub_services)]
    return {name for limits in holders if limits is not None for name in limits.exempt}


def limits_errors(config: Configuration) -> Iterator[FieldError]:
    """What a service's limits (and its rules' and sub-services') ask that it cannot do, and
    exempt lists that do not exist."""
    for index, vs in enumerate(config.virtual_services):
        service = f"virtual_services[{index}]"
        held = [(f"rules[{i}]", rule.limits) for i, rule in enumerate(vs.rules)]
        held += [(f"sub_services[{i}]", sub.limits) for i, sub in enumerate(vs.sub_services)]
        for holder, own in held:
            if own is not None:
                yield from _request_limits_errors(own, f"{service}.{holder}.limits", config)
        limits = vs.limits
        if limits is None:
            continue
        where = f"{service}.limits"
        yield from _exempt_errors(limits, where, config)
        per_client = limits.per_client
        if vs.mode is Mode.l4 and vs.forwarding is Forwarding.dsr:
            # the kernel's meters count connections in conntrack, which never sees the
            # replies of a DSR service (they go from the real servers to the client)
            yield FieldError(
                path=where,
                message="needs connection tracking, which DSR services do not have: "
                "use forwarding: nat, or limit on the real servers",
            )
            continue
        counts_requests = per_client is not None and per_client.requests_per_second is not None
        if counts_requests and not vs.type.reads_http:
            yield FieldError(
                path=f"{where}.per_client.requests_per_second",
                message="counts HTTP requests: it needs an l7 service of type http",
            )


def _exempt_errors(limits: Limits, where: str, config: Configuration) -> Iterator[FieldError]:
    for position, name in enumerate(limits.exempt):
        if name not in config.access_lists:
            names = ", ".join(sorted(config.access_lists)) or "none is defined"
            yield FieldError(
                path=f"{where}.exempt[{position}]",
                message=f"{name!r} is not in access_lists ({names})",
            )


def _request_limits_errors(
    limits: Limits, where: str, config: Configuration
) -> Iterator[FieldError]:
    """A rule's or sub-service's limits: requests per second of a client, nothing else."""
    yield from _exempt_errors(limits, where, config)
    for field in ("max_connections", "connections_per_second"):
        if getattr(limits, field) is not None:
            yield FieldError(path=f"{where}.{field}", message=_REQUESTS_ONLY)
    per_client = limits.per_client
    for field in ("connections", "connections_per_second"):
        if per_client is not None and getattr(per_client, field) is not None:
            yield FieldError(path=f"{where}.per_client.{field}", message=_REQUESTS_ONLY)
    if per_client is None or per_client.requests_per_second is None:
        yield FieldError(
            path=f"{where}.per_client.requests_per_second",
            message="is what a rule's or sub-service's limits count: give it (1..10000000)",
        )
