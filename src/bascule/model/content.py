"""What the L7 sections ask of a service: the field errors of rules and sub-services (pure).

``parse_document`` calls ``content_errors`` once every field is valid. Rules, sub-services,
header operations, path rewriting, ``forwarded`` other than the default and a ``respond`` or
``redirect`` when nothing is available read HTTP requests: they need an ``l7`` service of
``type: http``. Names must be unique, a rule's ``use`` must name a sub-service, and each
sub-service's pool must be something its scheduler and persistence can run (the same checks
as its service's, ``modes.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from bascule.errors import FieldError
from bascule.model.capabilities import Forwarded, Mode, RuleActionKind
from bascule.model.modes import needs_errors
from bascule.model.real_server import Forwarding, RealServer
from bascule.model.rules import SorryServer
from bascule.model.virtual_service import VirtualService

if TYPE_CHECKING:
    from bascule.model.document import Configuration

_HTTP_ONLY = "reads HTTP requests: it needs an l7 service of type http"
_LATER = "is not supported yet"


def content_errors(config: Configuration) -> Iterator[FieldError]:
    """One FieldError per L7 section a service cannot have, and per dangling name."""
    for index, vs in enumerate(config.virtual_services):
        where = f"virtual_services[{index}]"
        if vs.not_available is not None and vs.not_available.sorry_server is not None:
            sorry = vs.not_available.sorry_server
            yield from _sorry_server(vs, sorry, f"{where}.not_available.sorry_server")
        if not (vs.mode is Mode.l7 and vs.type.reads_http):
            yield from _not_http(vs, where)
            continue
        yield from _sub_services(vs, where)
        yield from _rules(vs, where)


def _not_http(vs: VirtualService, where: str) -> Iterator[FieldError]:
    for field in ("sub_services", "rules", "request_headers", "response_headers"):
        if getattr(vs, field):
            yield FieldError(path=f"{where}.{field}", message=_HTTP_ONLY)
    if vs.rewrite_path is not None:
        yield FieldError(path=f"{where}.rewrite_path", message=_HTTP_ONLY)
    if vs.forwarded in (Forwarded.via, Forwarded.both):
        yield FieldError(path=f"{where}.forwarded", message=f"{vs.forwarded.value} {_HTTP_ONLY}")
    if vs.mode is Mode.l4 and vs.request_log:
        yield FieldError(path=f"{where}.request_log", message=f"on l4 services {_LATER}")
    if vs.mode is Mode.l4 and vs.timeouts is not None:
        yield FieldError(path=f"{where}.timeouts", message=f"on l4 services {_LATER}")
    if vs.mode is Mode.l4 and vs.slow_start:
        yield FieldError(path=f"{where}.slow_start", message=f"on l4 services {_LATER}")
    if vs.mode is Mode.l4 and vs.drain_time:
        yield FieldError(path=f"{where}.drain_time", message=f"on l4 services {_LATER}")
    available = vs.not_available
    if available is None:
        return
    if vs.mode is Mode.l4 and vs.forwarding is not Forwarding.nat:
        yield FieldError(
            path=f"{where}.not_available",
            message=f"a sorry server on {vs.forwarding.value} services {_LATER} (nat only)",
        )
    elif available.respond is not None:
        yield FieldError(path=f"{where}.not_available.respond", message=_HTTP_ONLY)
    elif available.redirect is not None:
        yield FieldError(path=f"{where}.not_available.redirect", message=_HTTP_ONLY)


def _sorry_server(vs: VirtualService, sorry: SorryServer, where: str) -> Iterator[FieldError]:
    """A sorry server is not one of the service's real servers, and an l4 one is of the VIP's
    address family (NAT translates within a family)."""
    key = RealServer(address=sorry.address, port=sorry.port).key
    if any(rs.key == key for rs in vs.real_servers):
        yield FieldError(path=where, message=f"{key} is already a real server of this service")
    if vs.mode is Mode.l4 and (":" in sorry.address) != (":" in vs.address):
        yield FieldError(
            path=f"{where}.address",
            message="must be of the VIP's address family (NAT cannot translate between them)",
        )


def repeats(keys: Iterable[str]) -> Iterator[tuple[int, int]]:
    """``(index, first)`` for every key already seen at position ``first``."""
    seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key in seen:
            yield index, seen[key]
        seen.setdefault(key, index)


def _sub_services(vs: VirtualService, where: str) -> Iterator[FieldError]:
    for index, first in repeats(sub.name for sub in vs.sub_services):
        yield FieldError(
            path=f"{where}.sub_services[{index}].name",
            message=f"{vs.sub_services[index].name!r} is already the name of sub_services[{first}]",
        )
    for index, sub in enumerate(vs.sub_services):
        sub_where = f"{where}.sub_services[{index}]"
        pool = vs.pool(sub)
        if pool.scheduler.dynamic:
            yield FieldError(
                path=f"{sub_where}.scheduler",
                message=f"{pool.scheduler.value} in a sub-service {_LATER}",
            )
        yield from needs_errors(pool, sub_where)
        for rs_index, first in repeats(rs.key for rs in sub.real_servers):
            yield FieldError(
                path=f"{sub_where}.real_servers[{rs_index}]",
                message=f"{sub.real_servers[rs_index].key} is already real_servers[{first}] "
                "of this sub-service",
            )
        for rs_index, rs in enumerate(sub.real_servers):
            if rs.forwarding is not None:
                yield FieldError(
                    path=f"{sub_where}.real_servers[{rs_index}].forwarding",
                    message="applies to mode l4 only",
                )


def _rules(vs: VirtualService, where: str) -> Iterator[FieldError]:
    for index, first in repeats(rule.name for rule in vs.rules):
        yield FieldError(
            path=f"{where}.rules[{index}].name",
            message=f"{vs.rules[index].name!r} is already the name of rules[{first}]",
        )
    subs = {sub.name for sub in vs.sub_services}
    for index, rule in enumerate(vs.rules):
        action = rule.action
        if action.kind is RuleActionKind.use and action.use not in subs:
            offered = ", ".join(sorted(subs)) or "none yet"
            yield FieldError(
                path=f"{where}.rules[{index}].action.use",
                message=f"{action.use!r} is not a sub-service of this service "
                f"(sub_services: {offered})",
            )
