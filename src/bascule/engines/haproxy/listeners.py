"""Whether HAProxy could bind a configuration's listeners, tried before a reload.

Where it sits: in the engine's ``check`` (engine.py), after ``haproxy -c``, before anything
is touched.
"""

from __future__ import annotations

import errno
import socket

from bascule.model import Configuration, Mode, ServiceType
from bascule.model.offload import HTTP_PORT
from bascule.net.addresses import host_port


def unbindable_listeners(config: Configuration) -> list[tuple[str, str]]:
    """Listeners of ``config`` that HAProxy could not bind: (address:port, reason).

    ``haproxy -c`` does not bind, and a reload that meets EADDRINUSE makes HAProxy 2.6 pause
    every listener of the running worker while it retries (haproxy.c, protocol_bind_all), so
    new connections to *every* service are refused for about two seconds before it gives
    up. Trying each bind first, the way HAProxy does it (SO_REUSEADDR and SO_REUSEPORT, which
    HAProxy's own listeners also carry, so the ports it already holds bind fine), refuses such
    a change before anything is touched. An address not on the machine yet is skipped: the
    daemon adds the VIP before reloading.
    """
    busy: list[tuple[str, str]] = []
    for vs in config.virtual_services:
        # a STARTTLS front holds a starttls service's VIP (HAProxy its loopback relay)
        if not vs.enabled or vs.mode is not Mode.l7 or vs.type is ServiceType.starttls:
            continue
        ports_of = [(r.first, r.last) for r in vs.port_ranges]
        if vs.tls is not None and vs.tls.redirect_http:
            ports_of.append((HTTP_PORT, HTTP_PORT))
        for address in vs.addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            for first, last in ports_of:
                for port in range(first, last + 1):
                    if _in_use(family, address, port):
                        busy.append((host_port(address, port), "address already in use"))
    return busy


def _in_use(family: socket.AddressFamily, address: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as "v6only"
        try:
            probe.bind((address, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False
