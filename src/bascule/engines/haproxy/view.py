"""Model -> HAProxy view: every decision about the HAProxy configuration, as frozen values.

Where this sits in the flow of a change: the reconciler hands a validated ``Configuration``
(a store revision) to the HAProxy engine, which calls ``build_view`` here, then
``render.render`` (a dumb Jinja template) to get the text it checks with ``haproxy -c`` and
applies. Nothing here does I/O or reads settings: the values that are not in the model come
in as ``HaproxyGlobals`` or are constants of this module. The daemon and ``runtime.py`` use
``proxy_name``/``server_name`` so runtime commands name exactly what the file declares.

The view is made of the sections' own modules: the ``global`` and ``defaults`` sections in
process_settings.py, each pool's ``server`` lines in servers.py (with ``server_name``), how
each scheduler balances in balancing.py, and checks, content rules, persistence, limits,
caching, authentication, logs, TLS and peers in theirs; this module holds the sections'
values (``HaproxyGlobals``, ``ProxyView``, ``FrontendView``, ``HaproxyView``) and puts them
together (``build_view``).

Injection safety: every free-text user string (paths, hosts, header names and values,
regular expressions, POST bodies, file paths) is emitted through ``quote`` (HAProxy strong
quoting, manual section 2.2); log-format arguments go through ``quote_log_format`` (which also
doubles ``%``, manual section 8.2.6). Identifiers the model constrains to a safe alphabet
(service names, IP addresses, hex strings) go through ``token``, which re-checks that
alphabet and refuses anything else. Section numbers below refer to HAProxy 2.6's
``configuration.txt``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bascule.engines.haproxy import content
from bascule.engines.haproxy import tls as offload
from bascule.engines.haproxy.authentication import AuthenticationView, authentication_view
from bascule.engines.haproxy.balancing import balance_of
from bascule.engines.haproxy.caching import CachingView, caching_view
from bascule.engines.haproxy.checks import HealthCheckView, health_check_view
from bascule.engines.haproxy.descriptors import Descriptors, count
from bascule.engines.haproxy.limits import (
    LimitsView,
    RequestLimitsView,
    limits_view,
    pool_limits_view,
    rule_limits_view,
)
from bascule.engines.haproxy.logs import LogView, log_view, proxy_lines
from bascule.engines.haproxy.persistence import (
    PersistenceView,
    persistence_view,
    section_name,
    table_names,
)
from bascule.engines.haproxy.process_settings import defaults, global_settings
from bascule.engines.haproxy.quoting import quote, token
from bascule.engines.haproxy.servers import ServerView, pool_servers, server_name
from bascule.model import Configuration, ServiceType, VirtualService
from bascule.model.offload import HTTP_PORT
from bascule.model.tls import starttls_relay
from bascule.net.addresses import host_port

if TYPE_CHECKING:  # peers.py names its section with this module's PEERS
    from bascule.engines.haproxy.peers import PeersListener


# 4.2 "retry-on": the failure classes where the request either never reached the server
# (conn-failure) or the server vanished without answering (empty-response, and
# response-timeout for a server that died silently). junk-response and status codes are left
# out: those are answers, and replaying them usually hurts. 2.6 retries any method, so
# non-idempotent requests are excluded with "http-request disable-l7-retry" (4.2), which
# still allows the always-safe conn-failure retry.
RETRY_ON: tuple[str, ...] = ("conn-failure", "empty-response", "response-timeout")
# RFC 9110 section 9.2.2 idempotent methods, as HAProxy's predefined ACLs (7.4);
# METH_GET also matches HEAD.
IDEMPOTENT_METHOD_ACLS: tuple[str, ...] = (
    "METH_GET",
    "METH_OPTIONS",
    "METH_PUT",
    "METH_DELETE",
    "METH_TRACE",
)

# 4.2 "http-reuse": "safe" is HAProxy's recommended strategy: only a client's second and later
# requests may ride an idle server connection, so a race with a server closing it is
# retried by the client itself. Spelled out so a later change to it is a visible decision.
HTTP_REUSE = "safe"

# The local "peers" section and this process's peer in it (see HaproxyGlobals.local_peer).
PEERS = "bascule"

# Where the store's certificate files, the crt-lists and the ACME map are, as the daemon lays
# out its data directory (the engine passes its own; golden files print these).
DEFAULT_TLS_PATHS = offload.TlsPaths(
    certificates_dir="/var/lib/bascule/certificates",
    crt_list_dir="/var/lib/bascule/haproxy/crt-lists",
)
# Where the page store's files are (store/pages.py; not_available.respond.body_file).
DEFAULT_PAGES_DIR = "/var/lib/bascule/pages"
DEFAULT_CACHE_GENERATIONS_MAP = "/var/lib/bascule/haproxy/cache-generations.map"


# redirect_http's frontend: "<service>.http" (service names never contain '.', so it cannot
# collide with a service, like the fallback tables' "<service>.src").
REDIRECT_SUFFIX = ".http"

# --------------------------------------------------------------------------- names


def proxy_name(vs: VirtualService) -> str:
    """The section of a pool: a virtual service's ``listen`` section (the model allows
    [a-z0-9-]), or a sub-service's ``backend`` (persistence.section_name)."""
    return token(section_name(vs))


# --------------------------------------------------------------------------- the view


@dataclass(frozen=True, kw_only=True)
class HaproxyGlobals:
    """Settings of the HAProxy process that are not in the model (from the daemon's settings).

    ``server_state_file``, when set, makes a reload restore servers' health and runtime
    state from the file the engine saves with ``show servers state`` just before reloading.
    ``cpus``, when given, are the CPUs the threads may run on, one per thread: thread N is
    bound to the Nth (see ``CPU_MAP_LIMIT``). ``descriptor_limit``, when given, is how many
    file descriptors HAProxy may open: maxconn is then the most that fit beside what the
    configuration itself holds (descriptors.py), at most ``maxconn``.
    """

    stats_socket: str
    maxconn: int
    nbthread: int
    descriptor_limit: int | None = None
    hard_stop_after_s: int = 30
    server_state_file: str | None = None
    cpus: tuple[int, ...] = ()
    # Where the local peer listens (peers.py: a unix socket, or ip:port with TLS): the old
    # worker hands its stick tables (persistence) to the new one there on a reload (3.5
    # "Peers"). None: tables start empty after a reload.
    local_peer: PeersListener | None = None
    # The certificate store's files, the crt-lists and the ACME challenge map (tls.py).
    tls_paths: offload.TlsPaths = DEFAULT_TLS_PATHS
    # The master holds the daemon's request log pipe (logs.py); False: no local target.
    request_log_pipe: bool = False
    # The page store's files (``<name>.html``), read by HAProxy when it loads the config.
    pages_dir: str = DEFAULT_PAGES_DIR
    # The services' cache generations (caching.py: the purge), ``<service> <generation>``.
    cache_generations_map: str = DEFAULT_CACHE_GENERATIONS_MAP
    # The HTTP user store's users, (name, crypt(3) hash), for the services' basic auth
    # (authentication.py); what the document names is looked up here.
    http_users: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for field, value in (
            ("maxconn", self.maxconn),
            ("nbthread", self.nbthread),
            ("hard_stop_after_s", self.hard_stop_after_s),
        ):
            if value < 1:
                raise ValueError(f"{field} must be at least 1, got {value}")
        if self.cpus and len(self.cpus) != self.nbthread:
            raise ValueError(f"cpus must name one CPU per thread ({self.nbthread}): {self.cpus}")
        if any(cpu < 0 for cpu in self.cpus) or len(set(self.cpus)) != len(self.cpus):
            raise ValueError(f"cpus must be distinct CPU numbers: {self.cpus}")


@dataclass(frozen=True, kw_only=True)
class ProxyView:
    """One ``listen`` section (a virtual service) or ``backend`` section (a sub-service's
    pool). Lines are grouped the way the file reads."""

    name: str
    section: str = "listen"
    disabled: bool
    mode: str
    binds: tuple[str, ...]
    balance: str
    hash_type: str | None
    options: tuple[str, ...]
    rules: tuple[str, ...]
    check: HealthCheckView
    servers: tuple[ServerView, ...]
    persistence: tuple[str, ...] = ()
    # content rules (content.py): their ACLs (printed before the rules) and the use_backend
    # lines of the rules that send requests to a sub-service (printed after them)
    acls: tuple[str, ...] = ()
    use_backends: tuple[str, ...] = ()

    @property
    def settings(self) -> tuple[str, ...]:
        """What the section is: its state and mode (printed before the binds)."""
        return ("disabled", f"mode {self.mode}") if self.disabled else (f"mode {self.mode}",)

    @property
    def directives(self) -> tuple[str, ...]:
        """How it balances and proxies (printed after the binds)."""
        lines = [f"balance {self.balance}"]
        if self.hash_type is not None:
            lines.append(f"hash-type {self.hash_type}")
        return (*lines, *self.options)


@dataclass(frozen=True, kw_only=True)
class FrontendView:
    """A ``frontend`` section that serves no real server: ``redirect_http``'s port 80."""

    name: str
    lines: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class HaproxyView:
    """The whole HAProxy configuration, decided; ``render`` only prints it."""

    global_settings: tuple[str, ...]
    defaults: tuple[str, ...]
    proxies: tuple[ProxyView, ...]
    # the local "peers" section's lines (none without stick tables), and the backends that
    # only hold a fallback stick table: (name, lines)
    peers: tuple[str, ...] = ()
    peers_name: str = PEERS
    tables: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # redirect_http's port-80 frontends, and the crt-list files the TLS binds read (the
    # engine's shell writes them beside the configuration)
    frontends: tuple[FrontendView, ...] = ()
    crt_lists: tuple[offload.CrtList, ...] = ()
    # request logs to a TCP syslog server go through a ring (logs.py): (name, lines)
    rings: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # the services' caches (caching.py): (name, lines)
    caches: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # the services' basic auth users (authentication.py): (name, lines)
    userlists: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # the global maxconn, and the descriptors the configuration holds besides connections
    maxconn: int
    descriptors: Descriptors


def build_view(config: Configuration, globals_: HaproxyGlobals) -> HaproxyView:
    """Translate a validated configuration into the HAProxy view (pure)."""
    peers = PEERS if globals_.local_peer is not None else None
    persistence = {pool.name: persistence_view(pool, peers) for pool in config.pools()}
    lists = config.access_lists
    limits = {vs.name: limits_view(vs, _is_http(vs), lists) for vs in config.virtual_services}
    # the rules' limits of each service, and each sub-service pool's (by pool name)
    request_limits = {vs.name: rule_limits_view(vs, lists) for vs in config.virtual_services}
    request_limits |= {
        pool.name: pool_limits_view(pool, vs.limits, lists)
        for vs in config.virtual_services
        for pool in vs.pools[1:]
    }
    hashes = dict(globals_.http_users)
    authentication = {vs.name: authentication_view(vs, hashes) for vs in config.virtual_services}
    generations = globals_.cache_generations_map
    caching = {
        vs.name: caching_view(vs, generations, own_caches=_rules_to_own_caches(vs))
        for vs in config.virtual_services
    }
    caching |= {pool.name: caching_view(pool, generations) for pool in _sub_pools(config)}
    tables = tuple(
        (p.fallback_table, p.fallback_lines)
        for p in persistence.values()
        if p.fallback_table is not None
    ) + tuple(view.table for view in limits.values() if view.table is not None)
    tables += tuple(table for view in request_limits.values() for table in view.tables)
    has_tables = any(table_names(pool) for pool in config.pools())
    logs = log_view(config, globals_.request_log_pipe)
    peer_lines: tuple[str, ...] = ()
    local_peer: tuple[str, ...] = ()
    if has_tables and globals_.local_peer is not None:
        # 3.1 "localpeer" names this process's peer in the "peers" section (3.5).
        local_peer = (f"localpeer {token(globals_.local_peer.name)}",)
        peer_lines = globals_.local_peer.lines()
    paths = globals_.tls_paths
    proxies = tuple(
        proxy
        for vs in config.virtual_services
        for proxy in (
            _proxy(
                vs,
                persistence[vs.name],
                paths,
                logs,
                globals_.pages_dir,
                limits[vs.name],
                request_limits[vs.name],
                authentication[vs.name],
                caching[vs.name],
            ),
            *(
                _sub_service(
                    pool,
                    persistence[pool.name],
                    paths,
                    globals_.pages_dir,
                    request_limits[pool.name],
                    caching[pool.name],
                )
                for pool in vs.pools[1:]
            ),
        )
    )
    frontends = tuple(
        _redirect_frontend(vs, paths)
        for vs in config.virtual_services
        if vs.tls is not None and vs.tls.redirect_http
    )
    descriptors = count(
        binds=(
            *(bind for proxy in proxies for bind in proxy.binds),
            *(line[5:] for f in frontends for line in f.lines if line.startswith("bind ")),
            *(line[5:] for line in peer_lines if line.startswith("bind ")),
        ),
        servers=(server.check_keywords for proxy in proxies for server in proxy.servers),
        peers=sum(line.startswith("server ") for line in peer_lines),
        nbthread=globals_.nbthread,
    )
    maxconn = globals_.maxconn
    if globals_.descriptor_limit is not None:
        maxconn = descriptors.fit(globals_.descriptor_limit, ceiling=globals_.maxconn)
    return HaproxyView(
        global_settings=(*global_settings(globals_, maxconn), *logs.global_lines, *local_peer),
        defaults=defaults(globals_),
        proxies=proxies,
        peers=peer_lines,
        tables=tables,
        frontends=frontends,
        crt_lists=tuple(
            offload.crt_list(vs, vs.tls, paths)
            for vs in config.virtual_services
            if vs.tls is not None and _terminates_tls(vs)
        ),
        rings=logs.rings,
        caches=tuple(
            section
            for pool in config.pools()
            if (section := caching[pool.name].section) is not None
        ),
        userlists=tuple(
            view.userlist for view in authentication.values() if view.userlist is not None
        ),
        maxconn=maxconn,
        descriptors=descriptors,
    )


def _proxy(
    vs: VirtualService,
    persistence: PersistenceView,
    paths: offload.TlsPaths,
    logs: LogView,
    pages_dir: str,
    limits: LimitsView,
    rule_limits: RequestLimitsView,
    authentication: AuthenticationView,
    caching: CachingView,
) -> ProxyView:
    name = proxy_name(vs)
    http = _is_http(vs)
    balance = balance_of(vs)
    options: tuple[str, ...] = ()
    idempotent_only: tuple[str, ...] = ()
    tls = vs.tls
    # the first rules: ACME's answers on a plain HTTP listener of port 80; what an HTTPS
    # service tells its real servers, and HSTS
    first: tuple[str, ...] = ()
    if http and tls is None and _listens_on(vs, HTTP_PORT):
        first = offload.acme_rules(paths)
    elif http and tls is not None:
        first = (
            *offload.http_request_rules(tls),
            *offload.http_response_rules(tls, quote=quote),
        )
    binds = _binds(vs)
    if vs.accept_proxy:
        # 5.1 "accept-proxy": the client's address is the one the PROXY header gives; a
        # connection without a header is refused
        binds = tuple(f"{bind} accept-proxy" for bind in binds)
    if tls is not None and _terminates_tls(vs):
        options_of_bind = offload.listener_tls(vs, tls, paths, quote=quote).bind_options
        binds = tuple(f"{bind} {options_of_bind}" for bind in binds)
    if http:
        # 4.2: keep-alive on both sides (the 2.x default, stated), connection reuse, the
        # client address for the real servers, and no idle client connection cut during a
        # soft stop (reload) before it has had a response.
        forwardfor = ("option forwardfor",) if vs.forwarded.x_forwarded_for_header else ()
        options = (
            "option http-keep-alive",
            f"http-reuse {HTTP_REUSE}",
            *forwardfor,
            "option idle-close-on-response",
            f"retry-on {' '.join(RETRY_ON)}",
        )
        idempotent_only = (
            f"http-request disable-l7-retry unless {' || '.join(IDEMPOTENT_METHOD_ACLS)}",
        )
    rules = content.ContentView()
    if http:
        rules = content.content_view(
            vs,
            {pool.name.rpartition("/")[2]: proxy_name(pool) for pool in vs.pools[1:]},
            pages_dir=pages_dir,
            after_matches=rule_limits.rules,
        )
    elif vs.not_available is not None and vs.not_available.sorry_server is None:
        raise ValueError(f"{vs.name}: not_available answers HTTP; this service is not http")
    return ProxyView(
        name=name,
        disabled=not vs.enabled,
        mode="http" if http else "tcp",
        binds=binds,
        balance=balance.algorithm,
        hash_type=balance.hash_type,
        options=(
            *options,
            *proxy_lines(vs, http, logs),
            *_timeouts(vs, client=True),
            *limits.options,
            *caching.options,
        ),
        acls=rules.acls,
        rules=(
            *limits.rules,
            *first,
            *authentication.request_rules,
            *_critical_rules(vs, http),
            *rules.request_rules,
            *caching.request_rules,
            *idempotent_only,
            *rules.response_rules,
            *caching.response_rules,
        ),
        use_backends=rules.use_backends,
        check=health_check_view(vs),
        servers=pool_servers(vs, persistence, paths),
        persistence=persistence.lines,
    )


def _timeouts(vs: VirtualService, *, client: bool) -> tuple[str, ...]:
    """4.2 "timeout client|connect|server|queue" of a section, over the defaults section's.
    ``idle`` is the client side's (a listen section's only: a backend has no clients), and the
    tunnel's: once a TCP connection (or an upgraded HTTP one) is established, "timeout
    tunnel" supersedes the client and server timeouts."""
    timeouts = vs.timeouts
    if timeouts is None:
        return ()
    pairs = [("client", timeouts.idle), ("tunnel", timeouts.idle)] if client else []
    pairs += [("connect", timeouts.connect), ("server", timeouts.server)]
    pairs += [("queue", timeouts.queue)]
    return tuple(f"timeout {name} {value}s" for name, value in pairs if value is not None)


def _sub_pools(config: Configuration) -> tuple[VirtualService, ...]:
    return tuple(pool for vs in config.virtual_services for pool in vs.pools[1:])


def _rules_to_own_caches(vs: VirtualService) -> tuple[int, ...]:
    """The numbers of the rules that send requests to a sub-service with a cache of its own:
    the service's cache leaves those requests to it."""
    cached = {sub.name for sub in vs.sub_services if sub.cache is not None}
    return tuple(
        number for number, rule in enumerate(vs.rules, start=1) if rule.action.use in cached
    )


def _sub_service(
    pool: VirtualService,
    persistence: PersistenceView,
    paths: offload.TlsPaths,
    pages_dir: str,
    limits: RequestLimitsView,
    caching: CachingView,
) -> ProxyView:
    """A sub-service's pool as a ``backend`` section: scheduled, persisted and checked like a
    service; its "not available" answer is its own (``nbsrv`` of this backend); its limits
    first, then its cache (after "not available": an answer of the load balancer is not
    kept)."""
    balance = balance_of(pool)
    available = pool.not_available
    return ProxyView(
        name=proxy_name(pool),
        section="backend",
        disabled=not pool.enabled,
        mode="http",
        binds=(),
        balance=balance.algorithm,
        hash_type=balance.hash_type,
        options=(
            f"http-reuse {HTTP_REUSE}",
            f"retry-on {' '.join(RETRY_ON)}",
            *_timeouts(pool, client=False),
        ),
        rules=(
            *limits.rules,
            *_critical_rules(pool, True),
            *(
                content.not_available_rules(available, pool, pages_dir=pages_dir)
                if available is not None
                else ()
            ),
            *caching.request_rules,
            *caching.response_rules,
        ),
        check=health_check_view(pool),
        servers=pool_servers(pool, persistence, paths),
        persistence=persistence.lines,
    )


def _terminates_tls(vs: VirtualService) -> bool:
    """Whether HAProxy itself ends the service's TLS (a STARTTLS front ends its own)."""
    return vs.tls is not None and vs.type is not ServiceType.starttls


def _listens_on(vs: VirtualService, port: int) -> bool:
    return any(r.first <= port <= r.last for r in vs.port_ranges)


def _redirect_frontend(vs: VirtualService, paths: offload.TlsPaths) -> FrontendView:
    """``redirect_http``: port 80 of the VIP (each VIP of a dual-stack service) answers ACME's
    challenges, and 301 to HTTPS."""
    lines = ["disabled"] if not vs.enabled else []
    lines += [
        "mode http",
        *(
            f"bind {token(host_port(address, HTTP_PORT))}"
            + (" v6only" if ipaddress.ip_address(address) == ipaddress.IPv6Address("::") else "")
            for address in vs.addresses
        ),
        *offload.acme_rules(paths),
        offload.redirect_rule(vs, quote=quote),
    ]
    return FrontendView(name=token(f"{vs.name}{REDIRECT_SUFFIX}"), lines=tuple(lines))


def _is_http(vs: VirtualService) -> bool:
    if vs.type is ServiceType.http:
        return True
    if vs.type in (ServiceType.generic, ServiceType.remote_terminal, ServiceType.starttls):
        return False
    raise ValueError(f"service type {vs.type.value} has no HAProxy translation")


def _binds(vs: VirtualService) -> tuple[str, ...]:
    if vs.type is ServiceType.starttls:
        # The STARTTLS front (engines/stunnel) listens on the VIP; HAProxy takes the plain
        # sessions on the service's relay address and schedules and checks the real servers.
        return (token(host_port(*starttls_relay(vs.name, vs.port))),)
    # Section 4.2 "bind": "<address>:<port_range>"; IPv6 in brackets. A wildcard IPv6 VIP
    # gets "v6only" so it does not also take the IPv4 wildcard, a different VIP in the model.
    # A dual-stack service binds each of its VIPs (address, then address6) on every port.
    binds = []
    for address in vs.addresses:
        wildcard6 = ipaddress.ip_address(address) == ipaddress.IPv6Address("::")
        suffix = " v6only" if wildcard6 else ""
        binds += [
            token(host_port(address, str(port_range))) + suffix for port_range in vs.port_ranges
        ]
    return tuple(binds)


def _critical_rules(vs: VirtualService, http: bool) -> tuple[str, ...]:
    # LoadMaster "critical": the service answers as down while that server is down.
    # srv_is_up (7.3.2) is false when the server is DOWN or in maintenance.
    action = "http-request return status 503" if http else "tcp-request content reject"
    return tuple(
        f"{action} if !{{ srv_is_up({proxy_name(vs)}/{server_name(rs)}) }}"
        for rs in vs.real_servers
        if rs.critical
    )
