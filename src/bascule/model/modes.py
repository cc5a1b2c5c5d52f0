"""What each mode allows: the rules a document breaks by asking a mode for what it cannot do.

``parse_document`` calls ``mode_errors`` once every field and invariant is valid. The facts
come from ``model/capabilities.py`` (which modes allow a scheduler, a persistence method or a
check type, which service type each needs); the rules here only say them as field errors. A
few things are refused because this release has not built them yet ("not supported yet": the
agent-driven schedulers and per-server limits on l4, a real server
forwarding unlike its service); they are refused with that message, never silently ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bascule.errors import FieldError
from bascule.model.capabilities import (
    CheckType,
    Mode,
    PersistenceMethod,
    Protocol,
    ProxyProtocol,
    ServiceType,
)
from bascule.model.real_server import Forwarding
from bascule.model.virtual_service import VirtualService

if TYPE_CHECKING:
    from bascule.model.document import Configuration

_LATER = "is not supported yet"
_L7_ONLY = " needs mode l7: an l4 service forwards packets and does not read requests"


def mode_errors(config: Configuration) -> Iterator[FieldError]:
    """One FieldError per value a service's mode cannot honour."""
    for index, vs in enumerate(config.virtual_services):
        where = f"virtual_services[{index}]"
        if vs.mode is Mode.l4:
            yield from _l4(vs, where)
        else:
            yield from _l7(vs, where)


def needs_errors(vs: VirtualService, where: str) -> Iterator[FieldError]:
    """What the scheduler and the persistence method of an l7 service need of it (on l4,
    everything that needs something is refused by mode)."""
    if vs.scheduler.needs_check and not vs.checked:
        yield FieldError(
            path=f"{where}.check.type",
            message=f"{vs.scheduler.value} follows the health checks' response times: "
            "it needs a health check (not none)",
        )
    # `auto` is resolved by the service layer (detect/) before anything runs it
    for path, name, needs in (
        ("scheduler", vs.scheduler.value, vs.scheduler.needs_type),
        ("persistence.method", vs.persistence.method.value, vs.persistence.method.needs_type),
    ):
        if needs is not None and vs.type not in (needs, ServiceType.auto):
            yield FieldError(
                path=f"{where}.{path}",
                message=f"{name} needs type: {needs.value} (this service is type: {vs.type.value})",
            )


def _l7(vs: VirtualService, where: str) -> Iterator[FieldError]:
    if vs.forwarding is not Forwarding.nat:
        yield FieldError(
            path=f"{where}.forwarding",
            message="applies to mode l4 only; an l7 service is always a full proxy",
        )
    for field in ("subnet_originating", "drop_on_failure"):
        if getattr(vs, field):
            yield FieldError(path=f"{where}.{field}", message="applies to mode l4 only")
    yield from needs_errors(vs, where)
    if Mode.l7 not in vs.check.type.modes:
        # the checks HAProxy does not have; Bascule's own checker runs them on l4
        yield FieldError(
            path=f"{where}.check.type",
            message=f"{vs.check.type.value} {_LATER} on l7 services",
        )
    for rs_index, rs in enumerate(vs.real_servers):
        if rs.forwarding is not None:
            yield FieldError(
                path=f"{where}.real_servers[{rs_index}].forwarding",
                message="applies to mode l4 only",
            )


def _l4(vs: VirtualService, where: str) -> Iterator[FieldError]:
    # A `type: auto` service is resolved by the service layer (detect/) before anything runs it
    if Mode.l4 not in vs.type.modes:
        yield FieldError(path=f"{where}.type", message=f"{vs.type.value}{_L7_ONLY}")
    if vs.tls is not None:
        yield FieldError(
            path=f"{where}.tls",
            message="SSL offload needs mode l7: the proxy terminates TLS, and an l4 service "
            "forwards packets without reading them (remove tls, or use mode l7)",
        )
    if vs.transparent:
        yield FieldError(
            path=f"{where}.transparent",
            message="applies to mode l7 only (l4 nat keeps the client's address anyway)",
        )
    if vs.proxy_protocol is not ProxyProtocol.none or vs.accept_proxy:
        field = "accept_proxy" if vs.accept_proxy else "proxy_protocol"
        yield FieldError(
            path=f"{where}.{field}",
            message="applies to mode l7 only: an l4 service forwards packets, it writes and "
            "reads no PROXY protocol header",
        )
    for field, address in zip(("address", "address6"), vs.addresses, strict=False):
        if not ipaddress.ip_address(address).is_unspecified:
            continue
        yield FieldError(
            path=f"{where}.{field}",
            message="an l4 service needs its own VIP (the kernel rewrites packets sent to it); "
            "0.0.0.0 and :: are for l7 services",
        )
    if vs.drop_on_failure and vs.forwarding is Forwarding.dsr:
        yield FieldError(
            path=f"{where}.drop_on_failure",
            message="applies to forwarding nat only (dsr keeps no connection state to cut)",
        )
    if vs.subnet_originating and vs.forwarding is Forwarding.dsr:
        yield FieldError(
            path=f"{where}.subnet_originating",
            message="applies to forwarding nat only (dsr never changes the source)",
        )
    if Mode.l4 not in vs.scheduler.modes:
        # the dynamic schedulers set weights through HAProxy's runtime API; the others read
        # requests
        reason = f" {_LATER} on l4 services (it runs on l7 services)"
        yield FieldError(
            path=f"{where}.scheduler",
            message=vs.scheduler.value + (reason if vs.scheduler.dynamic else _L7_ONLY),
        )
    if Mode.l4 not in vs.persistence.method.modes:
        offered = " or ".join(m.value for m in PersistenceMethod if Mode.l4 in m.modes)
        yield FieldError(
            path=f"{where}.persistence.method",
            message=f"{vs.persistence.method.value}{_L7_ONLY}; l4 offers {offered}",
        )
    yield from _l4_check(vs, where)
    for rs_index, rs in enumerate(vs.real_servers):
        rs_where = f"{where}.real_servers[{rs_index}]"
        if rs.forwarding is not None and rs.forwarding is not vs.forwarding:
            yield FieldError(
                path=f"{rs_where}.forwarding",
                message=f"a real server forwarding unlike its service {_LATER}; "
                "set forwarding on the virtual service",
            )
        if vs.forwarding is Forwarding.dsr and rs.port != vs.port:
            yield FieldError(
                path=f"{rs_where}.port",
                message=f"must be the VIP's port {vs.port}: direct server return cannot "
                "change the port (the real server answers the client itself)",
            )
        if rs.max_connections:
            yield FieldError(path=f"{rs_where}.max_connections", message=f"on l4 services {_LATER}")
        if rs.critical:
            yield FieldError(path=f"{rs_where}.critical", message=f"on l4 services {_LATER}")


def _l4_check(vs: VirtualService, where: str) -> Iterator[FieldError]:
    """The check must speak the service's protocol, or go to a port of its own."""
    kind = vs.check.type
    if vs.protocol in kind.protocols:
        return
    if vs.protocol is Protocol.udp:
        if vs.check.port is None:
            # "none" last: "icmp, dns or none"
            fits = sorted(
                (t for t in CheckType if Protocol.udp in t.protocols),
                key=lambda t: t is CheckType.none,
            )
            names = ", ".join(t.value for t in fits[:-1]) + f" or {fits[-1].value}"
            yield FieldError(
                path=f"{where}.check.type",
                message=f"{kind.value} checks a TCP service; a udp service is checked with "
                f"{names} (or give check.port for a TCP port on the server)",
            )
        return
    spoken = " or ".join(p.value for p in kind.protocols)
    yield FieldError(
        path=f"{where}.check.type", message=f"{kind.value} checks are for {spoken} services"
    )
