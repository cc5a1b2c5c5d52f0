"""What this release of Bascule does not do yet, refused with a clear message.

The document accepts the whole vocabulary of DESIGN.md so later capabilities only remove rows
from these tables; a value that is valid but not implemented is refused as "not supported
yet", never silently ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bascule.errors import FieldError
from bascule.model.check import CheckType
from bascule.model.persistence import PersistenceMethod
from bascule.model.real_server import Forwarding
from bascule.model.virtual_service import Mode, Protocol, Scheduler, ServiceType, VirtualService

if TYPE_CHECKING:
    from bascule.model.document import Configuration

_LATER = "is not supported yet"

UNSUPPORTED_SCHEDULERS: set[Scheduler] = set()
# decided at run time by the daemon (agents, check times) through HAProxy's runtime API
DYNAMIC_SCHEDULERS = {Scheduler.adaptive, Scheduler.weighted_response_time}
UNSUPPORTED_TYPES: set[ServiceType] = set()
# checks HAProxy does not do; the L4 checker (health/) runs them for l4 services
UNSUPPORTED_CHECKS = {CheckType.icmp, CheckType.dns, CheckType.rdp}
SUPPORTED_PERSISTENCE = set(PersistenceMethod)
# The service type a persistence method reads its key from (HTTP requests, a TLS ClientHello,
# an RDP connection request).
PERSISTENCE_TYPES = {
    PersistenceMethod.active_cookie: ServiceType.http,
    PersistenceMethod.server_cookie: ServiceType.http,
    PersistenceMethod.super_http: ServiceType.http,
    PersistenceMethod.hash_all_cookies: ServiceType.http,
    PersistenceMethod.url_hash: ServiceType.http,
    PersistenceMethod.host_header: ServiceType.http,
    PersistenceMethod.query_item: ServiceType.http,
    PersistenceMethod.selected_header: ServiceType.http,
    PersistenceMethod.ssl_session_id: ServiceType.generic,
    PersistenceMethod.rdp_cookie: ServiceType.remote_terminal,
}


def unsupported(config: Configuration) -> Iterator[FieldError]:
    """One FieldError per value this release cannot honour, or that its mode cannot."""
    for index, vs in enumerate(config.virtual_services):
        where = f"virtual_services[{index}]"
        if vs.type in UNSUPPORTED_TYPES:
            yield FieldError(path=f"{where}.type", message=f"{vs.type.value} {_LATER}")
        if vs.scheduler in UNSUPPORTED_SCHEDULERS:
            yield FieldError(path=f"{where}.scheduler", message=f"{vs.scheduler.value} {_LATER}")
        if vs.mode is Mode.l4:
            yield from _l4(vs, where)
        else:
            yield from _l7(vs, where)


def _l7(vs: VirtualService, where: str) -> Iterator[FieldError]:
    if vs.forwarding is not Forwarding.nat:
        yield FieldError(
            path=f"{where}.forwarding",
            message="applies to mode l4 only; an l7 service is always a full proxy",
        )
    for field in ("subnet_originating", "drop_on_failure"):
        if getattr(vs, field):
            yield FieldError(path=f"{where}.{field}", message="applies to mode l4 only")
    if vs.transparent:
        yield FieldError(path=f"{where}.transparent", message=f"L7 transparency {_LATER}")
    if vs.scheduler is Scheduler.weighted_response_time and not vs.checked:
        yield FieldError(
            path=f"{where}.check.type",
            message="weighted_response_time follows the health checks' response times: "
            "it needs a health check (not none)",
        )
    if vs.scheduler is Scheduler.url_hash and vs.type not in (ServiceType.http, ServiceType.auto):
        yield FieldError(
            path=f"{where}.scheduler", message="url_hash needs type: http (it reads the URL)"
        )
    if vs.persistence.method not in SUPPORTED_PERSISTENCE:
        yield FieldError(
            path=f"{where}.persistence.method",
            message=f"{vs.persistence.method.value} {_LATER}",
        )
    needs = PERSISTENCE_TYPES.get(vs.persistence.method)
    if needs is not None and vs.type not in (needs, ServiceType.auto):
        yield FieldError(
            path=f"{where}.persistence.method",
            message=f"{vs.persistence.method.value} needs type: {needs.value} "
            f"(this service is type: {vs.type.value})",
        )
    if vs.check.type in UNSUPPORTED_CHECKS:
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


_L7_ONLY = " needs mode l7: an l4 service forwards packets and does not read requests"
L4_SCHEDULERS = {
    Scheduler.round_robin,
    Scheduler.weighted_round_robin,
    Scheduler.least_connection,
    Scheduler.weighted_least_connection,
    Scheduler.fixed_weighting,
    Scheduler.source_ip_hash,
}
L4_PERSISTENCE = {PersistenceMethod.none, PersistenceMethod.source_ip}
UDP_CHECKS = {CheckType.none, CheckType.icmp, CheckType.dns}


def _l4(vs: VirtualService, where: str) -> Iterator[FieldError]:
    # A `type: auto` service is resolved by the service layer (detect/) before anything runs it
    if vs.type not in (ServiceType.generic, ServiceType.auto) and vs.type not in UNSUPPORTED_TYPES:
        yield FieldError(path=f"{where}.type", message=f"{vs.type.value}{_L7_ONLY}")
    if vs.transparent:
        yield FieldError(
            path=f"{where}.transparent",
            message="applies to mode l7 only (l4 nat keeps the client's address anyway)",
        )
    if ipaddress.ip_address(vs.address).is_unspecified:
        yield FieldError(
            path=f"{where}.address",
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
    if vs.scheduler in DYNAMIC_SCHEDULERS:
        yield FieldError(
            path=f"{where}.scheduler",
            message=f"{vs.scheduler.value} {_LATER} on l4 services (it runs on l7 services)",
        )
    elif vs.scheduler not in L4_SCHEDULERS and vs.scheduler not in UNSUPPORTED_SCHEDULERS:
        yield FieldError(path=f"{where}.scheduler", message=f"{vs.scheduler.value}{_L7_ONLY}")
    if vs.persistence.method not in L4_PERSISTENCE:
        yield FieldError(
            path=f"{where}.persistence.method",
            message=f"{vs.persistence.method.value}{_L7_ONLY}; l4 offers none or source_ip",
        )
    if vs.protocol is Protocol.udp and vs.check.type not in UDP_CHECKS and vs.check.port is None:
        yield FieldError(
            path=f"{where}.check.type",
            message=f"{vs.check.type.value} checks a TCP service; a udp service is checked "
            "with icmp, dns or none (or give check.port for a TCP port on the server)",
        )
    if vs.protocol is Protocol.tcp and vs.check.type is CheckType.dns:
        yield FieldError(path=f"{where}.check.type", message="dns checks are for udp services")
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
