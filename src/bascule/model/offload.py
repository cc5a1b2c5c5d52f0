"""What SSL offload and STARTTLS ask of a service and of the document (pure).

``parse_document`` calls ``offload_errors`` once every field is valid, beside the mode rules
(``modes.py``, which refuses ``tls`` on ``l4``). The facts come from ``capabilities.py``
(``ServiceType.tls``, ``ServiceType.reads_http``); the rules here say them as field errors:

- a type that cannot take ``tls`` (``remote_terminal``, ``auto``), a ``starttls`` service
  without its ``tls`` section or its ``starttls`` protocol, ``starttls`` on another type;
- what needs HTTP (``http2``, ``hsts``, ``redirect_http``) on a type that does not read it;
- what a STARTTLS service cannot do: its front (engines/stunnel) hides the client's address
  from the proxy, hands plain sessions to the real servers and listens on one port;
- ``ssl_session_id`` persistence on a service whose TLS ends here (it reads the session of a
  connection passed through, which a terminated connection no longer has);
- ``redirect_http``'s port 80 already taken on the VIP, and two STARTTLS relays that meet.

Whether the names of ``tls`` exist in the certificate store is the service layer's check
(daemon/certificates.py): the store is not the document's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bascule.errors import FieldError
from bascule.model.capabilities import (
    Mode,
    PersistenceMethod,
    Protocol,
    Scheduler,
    ServiceType,
    TlsUse,
)
from bascule.model.tls import ClientCertificate, starttls_relay
from bascule.model.virtual_service import VirtualService

if TYPE_CHECKING:
    from bascule.model.document import Configuration

#: The port ``redirect_http`` answers on (and ACME's HTTP-01 challenges arrive at).
HTTP_PORT = 80


def offload_errors(config: Configuration) -> Iterator[FieldError]:
    """One FieldError per TLS or STARTTLS value a service or the document cannot honour."""
    for index, vs in enumerate(config.virtual_services):
        if vs.mode is Mode.l7:
            yield from _service(vs, f"virtual_services[{index}]")
    yield from _redirect_clashes(config)
    yield from _relay_clashes(config)


def _service(vs: VirtualService, where: str) -> Iterator[FieldError]:
    kind = vs.type
    if vs.tls is None:
        if kind.tls is TlsUse.required:
            yield FieldError(
                path=f"{where}.tls",
                message=f"type {kind.value} needs a tls section: the certificates the "
                "STARTTLS upgrade presents (tls: {certificates: [NAME]})",
            )
    elif kind.tls is TlsUse.refused:
        yield FieldError(path=f"{where}.tls", message=_NO_TLS[kind])
    if kind is ServiceType.starttls:
        yield from _starttls(vs, where)
    elif vs.starttls is not None:
        yield FieldError(path=f"{where}.starttls", message="only used with type: starttls")
    tls = vs.tls
    if tls is None or kind.tls is TlsUse.refused:
        return
    if not kind.reads_http:
        for field in ("http2", "hsts", "redirect_http"):
            if getattr(tls, field):
                yield FieldError(
                    path=f"{where}.tls.{field}",
                    message=f"is for type http (HTTPS); this service is type {kind.value}",
                )
    if vs.persistence.method is PersistenceMethod.ssl_session_id:
        yield FieldError(
            path=f"{where}.persistence.method",
            message="ssl_session_id reads the TLS session of connections passed through; "
            "with tls the session ends at the load balancer: use source_ip (or a cookie "
            "with type http)",
        )


_NO_TLS = {
    ServiceType.auto: "type auto cannot take tls: choose type http (HTTPS) or generic "
    "(TLS over TCP, such as LDAPS or IMAPS)",
    ServiceType.remote_terminal: "type remote_terminal cannot take tls: RDP negotiates TLS "
    "inside its own protocol, which the proxy passes through untouched",
}


def _starttls(vs: VirtualService, where: str) -> Iterator[FieldError]:
    if vs.starttls is None:
        yield FieldError(
            path=f"{where}.starttls", message="type starttls needs starttls: smtp, imap or pop3"
        )
    if vs.extra_ports:
        yield FieldError(
            path=f"{where}.extra_ports",
            message="a starttls service listens on one port (give each port its own service)",
        )
    hidden = "the STARTTLS front hides the client's address from the proxy"
    if vs.scheduler is Scheduler.source_ip_hash:
        yield FieldError(path=f"{where}.scheduler", message=f"source_ip_hash: {hidden}")
    if vs.persistence.method is not PersistenceMethod.none:
        yield FieldError(
            path=f"{where}.persistence.method",
            message=f"a starttls service keeps no persistence: {hidden}, and a mail "
            "session is one connection",
        )
    tls = vs.tls
    if tls is None:
        return
    if len(tls.certificates) > 1:
        yield FieldError(
            path=f"{where}.tls.certificates",
            message="a starttls service serves one certificate (SNI among several is for "
            "type http and generic)",
        )
    if tls.client_certificate is not ClientCertificate.none:
        yield FieldError(
            path=f"{where}.tls.client_certificate",
            message="client certificates are for type http or generic with tls",
        )
    if tls.reencrypt:
        yield FieldError(
            path=f"{where}.tls.reencrypt",
            message="the real servers of a starttls service get the plain session (they "
            "speak the protocol without TLS behind the load balancer)",
        )


def _redirect_clashes(config: Configuration) -> Iterator[FieldError]:
    """``redirect_http`` listens on port 80 of the VIP: nothing else may."""
    services = config.virtual_services
    for index, vs in enumerate(services):
        if vs.tls is None or not vs.tls.redirect_http or vs.mode is not Mode.l7:
            continue
        path = f"virtual_services[{index}].tls.redirect_http"
        if any(r.first <= HTTP_PORT <= r.last for r in vs.port_ranges):
            yield FieldError(path=path, message=f"this service itself listens on port {HTTP_PORT}")
            continue
        for other_index, other in enumerate(services):
            if other_index == index or not _same_listener(vs, other):
                continue
            other_redirects = (
                other.tls is not None and other.tls.redirect_http and other.mode is Mode.l7
            )
            takes_80 = any(r.first <= HTTP_PORT <= r.last for r in other.port_ranges)
            if takes_80 or (other_redirects and other_index < index):
                yield FieldError(
                    path=path,
                    message=f"port {HTTP_PORT} of {vs.address} is already used by virtual "
                    f"service {other.name!r}",
                )
                break


def _same_listener(vs: VirtualService, other: VirtualService) -> bool:
    """Whether the two services' TCP listeners can meet on one address."""
    if other.protocol is not Protocol.tcp or vs.protocol is not Protocol.tcp:
        return False
    return any(
        _same_address(ipaddress.ip_address(mine), ipaddress.ip_address(theirs))
        for mine in vs.addresses  # both VIPs of a dual-stack service
        for theirs in other.addresses
    )


def _same_address(
    mine: ipaddress.IPv4Address | ipaddress.IPv6Address,
    theirs: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> bool:
    if mine.version != theirs.version:
        return False
    return mine == theirs or mine.is_unspecified or theirs.is_unspecified


def _relay_clashes(config: Configuration) -> Iterator[FieldError]:
    seen: dict[tuple[str, int], str] = {}
    for index, vs in enumerate(config.virtual_services):
        if vs.type is not ServiceType.starttls:
            continue
        relay = starttls_relay(vs.name, vs.port)
        if relay in seen:
            yield FieldError(
                path=f"virtual_services[{index}].name",
                message=f"its STARTTLS relay ({relay[0]}:{relay[1]}) meets that of virtual "
                f"service {seen[relay]!r}: rename one of them",
            )
        seen.setdefault(relay, vs.name)
