"""A pool's ``server`` lines: names, weights, backups, PROXY protocol, TPROXY, the sorry server.

Where it sits: under the view (view.py), which puts each pool's servers in its ``listen`` or
``backend`` section; ``server_name`` is also how the engine's runtime commands and its
observation name a real server (runtime.py, observation.py), so they name exactly what the
file declares. Weights are the model's scaled to HAProxy's 0..256 (model/weights.py). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bascule.engines.haproxy import tls as offload
from bascule.engines.haproxy.balancing import balance_of
from bascule.engines.haproxy.checks import health_check_view
from bascule.engines.haproxy.persistence import PersistenceView
from bascule.engines.haproxy.quoting import quote, token
from bascule.model import ProxyProtocol, RealServer, RealServerState, VirtualService
from bascule.model.weights import engine_weights
from bascule.net.addresses import host_port

# Section 5.2 "weight": "The default weight is 1, and the maximal value is 256. A value of 0
# means the server will not participate in load-balancing but will still accept persistent
# connections."
MAX_WEIGHT = 256
DRAIN_WEIGHT = 0

# 5.2 "send-proxy", "send-proxy-v2": the PROXY protocol header on every connection to a
# real server; "check-send-proxy" sends it on the health checks' connections too, since a
# server that expects it refuses a connection without it.
SEND_PROXY: dict[ProxyProtocol, tuple[str, ...]] = {
    ProxyProtocol.none: (),
    ProxyProtocol.v1: ("send-proxy", "check-send-proxy"),
    ProxyProtocol.v2: ("send-proxy-v2", "check-send-proxy"),
}

# The server that answers when a pool has no real server up (not_available.sorry_server).
# Real servers are named "<address>:<port>", so this name is never one of theirs.
SORRY_SERVER = "sorry"


def server_name(rs: RealServer) -> str:
    """The HAProxy server name of a real server: ``<address>:<port>``.

    HAProxy names accept letters, digits, '.', ':', '_' and '-' only, so an IPv6 address is
    written without brackets (``2001:db8::4:80``). The name stays unique inside a service:
    the port never contains ':', so the last ':' always separates it from the address.
    """
    return token(f"{rs.address}:{rs.port}")


@dataclass(frozen=True, kw_only=True)
class ServerView:
    """One ``server`` line. ``weight`` is HAProxy's 0..256; 0 means drain."""

    name: str
    address: str
    weight: int
    backup: bool = False
    disabled: bool = False
    maxconn: int | None = None
    cookie: str | None = None
    check_keywords: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        return " ".join(("server", self.name, self.address, *self.keywords))

    @property
    def keywords(self) -> tuple[str, ...]:
        """The words after the address: section 5.2 server keywords."""
        words = ["weight", str(self.weight)]
        if self.backup:
            words.append("backup")
        if self.disabled:
            words.append("disabled")
        if self.maxconn is not None:
            words += ["maxconn", str(self.maxconn)]
        if self.cookie is not None:
            words += ["cookie", self.cookie]
        words += self.check_keywords
        return tuple(words)


def pool_servers(
    pool: VirtualService, persistence: PersistenceView, paths: offload.TlsPaths
) -> tuple[ServerView, ...]:
    """A pool's real servers, then its sorry server: the last ``backup`` server (5.2), to
    which HAProxy sends traffic only when no other server is up. The sorry server is not
    checked: it is the last resort."""
    keywords = health_check_view(pool).server_keywords + SEND_PROXY[pool.proxy_protocol]
    if pool.slow_start:
        # 5.2 "slowstart": a server back from down (or from maintenance) ramps up to its weight
        # over this time instead of taking its full share at once
        keywords += ("slowstart", f"{pool.slow_start}s")
    if pool.tls is not None:
        keywords += offload.server_tls(pool, pool.tls, paths, checked=pool.checked, quote=quote)
    servers = _servers(pool, keywords, persistence.server_cookies or {})
    if pool.transparent:
        servers = tuple(_transparent(server) for server in servers)
    sorry = pool.not_available.sorry_server if pool.not_available is not None else None
    if sorry is None:
        return servers
    last_resort = ServerView(
        name=SORRY_SERVER,
        address=token(host_port(sorry.address, sorry.port)),
        weight=1,
        backup=True,
    )
    return (*servers, last_resort)


def _servers(
    vs: VirtualService, check_keywords: tuple[str, ...], cookies: dict[str, str]
) -> tuple[ServerView, ...]:
    weights = engine_weights(
        {rs.key: rs.weight for rs in vs.real_servers}, MAX_WEIGHT, weighted=vs.scheduler.weighted
    )
    if balance_of(vs).backups:
        ordered = _fixed_weighting_order(vs.real_servers)
        backups = {rs.key for rs in ordered[1:]}
    else:
        ordered = tuple(vs.real_servers)
        backups = set()
    return tuple(
        ServerView(
            name=server_name(rs),
            address=token(host_port(rs.address, rs.port)),
            weight=DRAIN_WEIGHT if rs.state is RealServerState.drain else weights[rs.key],
            backup=rs.key in backups,
            disabled=rs.state is RealServerState.disabled,
            maxconn=rs.max_connections or None,
            cookie=cookies.get(rs.key),
            check_keywords=check_keywords,
        )
        for rs in ordered
    )


def _transparent(server: ServerView) -> ServerView:
    """5.2 "source <addr> usesrc clientip": connect to the real server from the client's own
    address (TPROXY; transparency.py delivers the replies to HAProxy). The wildcard is of the
    server's family."""
    wildcard = "::" if server.address.startswith("[") else "0.0.0.0"
    keywords = ("source", wildcard, "usesrc", "clientip")
    return replace(server, check_keywords=(*server.check_keywords, *keywords))


def _fixed_weighting_order(servers: list[RealServer]) -> tuple[RealServer, ...]:
    """Highest LoadMaster weight first, document order on ties.

    The first is the only active server, the rest are backups in this order: without
    "option allbackups", HAProxy sends everything to "the first backup server in the list"
    that is operational (4.2 "option redispatch", "option allbackups"; 5.2 "backup").
    The order uses the model's weights, not the scaled ones, which may tie after rounding.
    The order does not depend on states: a disabled or drained active server (weight 0 takes
    it out of load balancing) hands over to the first backup, exactly as a failed one does,
    so state changes stay runtime operations; a weight change that reorders needs a reload.
    """
    return tuple(sorted(servers, key=lambda rs: -rs.weight))
