"""What a virtual service can be and do: the words of the document and the facts of each (pure).

Every fact Bascule knows about a service type, a scheduler, a persistence method or a check
type lives here, once, in a table keyed by the enum, and reads as a property of the member
(``Scheduler.weighted``, ``PersistenceMethod.needs_type``, ``CheckType.banner``...). The rest of
the code asks the member; it never keeps a second set of the same names:

- ``model/modes.py`` turns the ``modes`` and ``needs_*`` facts into the field errors of a
  document (an ``l4`` service with ``url_hash``, ``active_cookie`` on a ``generic`` one...);
- each engine keeps only its translation table, keyed by the enum: HAProxy's ``BALANCE``
  and ``CHECKS`` (``engines/haproxy/checks.py``) and ``PERSISTENCE``
  (``engines/haproxy/persistence.py``), nftables' ``NAT_SCHEDULING`` and ``DSR_SCHEDULING``
  (``engines/nftables/scheduling.py``) and ``STICKY`` (``engines/nftables/view.py``), the L4
  checker's ``PROBES`` (``health/probes.py``); a unit test per table proves it covers every
  member its mode allows.

Adding a member means one row here and one row in each translation table of the modes that
allow it; the tests name the table that lacks it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Mode(enum.StrEnum):
    """How a service forwards: ``l7`` proxies connections (HAProxy), ``l4`` forwards packets
    in the kernel (nftables)."""

    l7 = "l7"
    l4 = "l4"


class Protocol(enum.StrEnum):
    tcp = "tcp"
    udp = "udp"


class ServiceType(enum.StrEnum):
    """What the service speaks; ``auto`` is detected and replaced before anything runs it.

    ``https`` is not a member: the document accepts it as LoadMaster users type it and stores
    it as ``http`` with a ``tls`` section (model/virtual_service.py)."""

    auto = "auto"
    http = "http"
    generic = "generic"
    remote_terminal = "remote_terminal"
    starttls = "starttls"

    @property
    def modes(self) -> frozenset[Mode]:
        """The modes whose services may be of this type."""
        return SERVICE_TYPES[self].modes

    @property
    def tls(self) -> TlsUse:
        """Whether a ``tls`` section (SSL offload) is refused, optional or required."""
        return SERVICE_TYPES[self].tls

    @property
    def reads_http(self) -> bool:
        """Whether the proxy reads HTTP requests (headers, HTTP/2, HSTS, redirects)."""
        return SERVICE_TYPES[self].reads_http


class TlsUse(enum.StrEnum):
    """What a service type does with a ``tls`` section."""

    refused = "refused"
    optional = "optional"
    required = "required"


class StartTls(enum.StrEnum):
    """The protocols whose STARTTLS a ``type: starttls`` service speaks (``starttls:``)."""

    smtp = "smtp"
    imap = "imap"
    pop3 = "pop3"

    @property
    def check(self) -> CheckType:
        """The health check a service of this protocol gets unless it names one."""
        return STARTTLS_PROTOCOLS[self].check


class Scheduler(enum.StrEnum):
    """How a service picks a real server for a new connection (LoadMaster's methods)."""

    round_robin = "round_robin"
    weighted_round_robin = "weighted_round_robin"
    least_connection = "least_connection"
    weighted_least_connection = "weighted_least_connection"
    fixed_weighting = "fixed_weighting"
    source_ip_hash = "source_ip_hash"
    url_hash = "url_hash"
    weighted_response_time = "weighted_response_time"
    adaptive = "adaptive"

    @property
    def modes(self) -> frozenset[Mode]:
        """The modes whose services may use it."""
        return SCHEDULERS[self].modes

    @property
    def weighted(self) -> bool:
        """Whether the real servers' weights count (LoadMaster's plain round robin and least
        connection give every server the same share)."""
        return SCHEDULERS[self].weighted

    @property
    def counts_connections(self) -> bool:
        """The least connection family: new connections go where the fewest are open."""
        return SCHEDULERS[self].counts_connections

    @property
    def dynamic(self) -> bool:
        """Weights decided at run time by the daemon (agents, check times), not the document."""
        return SCHEDULERS[self].dynamic

    @property
    def needs_type(self) -> ServiceType | None:
        """The service type it reads its key from (``url_hash``: HTTP requests), if any."""
        return SCHEDULERS[self].needs_type

    @property
    def needs_check(self) -> bool:
        """Whether it weighs the real servers by their health checks (so needs one)."""
        return SCHEDULERS[self].needs_check


class PersistenceMethod(enum.StrEnum):
    """How a client is kept on the real server it first reached (LoadMaster's methods)."""

    none = "none"
    source_ip = "source_ip"
    super_http = "super_http"
    server_cookie = "server_cookie"
    active_cookie = "active_cookie"
    hash_all_cookies = "hash_all_cookies"
    url_hash = "url_hash"
    host_header = "host_header"
    query_item = "query_item"
    selected_header = "selected_header"
    ssl_session_id = "ssl_session_id"
    rdp_cookie = "rdp_cookie"

    @property
    def modes(self) -> frozenset[Mode]:
        """The modes whose services may use it."""
        return PERSISTENCE_METHODS[self].modes

    @property
    def needs_type(self) -> ServiceType | None:
        """The service type it reads its key from (HTTP requests, a TLS ClientHello, an RDP
        connection request), if any."""
        return PERSISTENCE_METHODS[self].needs_type

    @property
    def settings(self) -> frozenset[str]:
        """The fields of ``persistence`` it reads besides ``method`` (the WUI shows those)."""
        return PERSISTENCE_METHODS[self].settings


class CheckType(enum.StrEnum):
    """How a real server's health is checked."""

    none = "none"
    tcp = "tcp"
    http = "http"
    https = "https"
    icmp = "icmp"
    smtp = "smtp"
    ftp = "ftp"
    pop3 = "pop3"
    imap = "imap"
    ldap = "ldap"
    dns = "dns"
    rdp = "rdp"
    binary = "binary"

    @property
    def modes(self) -> frozenset[Mode]:
        """The modes whose services may use it."""
        return CHECK_TYPES[self].modes

    @property
    def protocols(self) -> frozenset[Protocol]:
        """The protocols of the services it checks on the real server's own port."""
        return CHECK_TYPES[self].protocols

    @property
    def default_port(self) -> int | None:
        """The port a client of this protocol leaves out of the Host header (http 80, https
        443); None for a check that sends no Host header."""
        return CHECK_TYPES[self].default_port

    @property
    def banner(self) -> str | None:
        """The regular expression the server's greeting must match, for a protocol whose
        server speaks first (SMTP, FTP, POP3, IMAP); None otherwise."""
        return CHECK_TYPES[self].banner

    @property
    def settings(self) -> frozenset[str]:
        """The fields of ``check`` it reads besides ``type`` (the WUI shows those)."""
        return CHECK_TYPES[self].settings


class MatchKind(enum.StrEnum):
    """What a content rule's ``match`` can test in a request (model/rules.py)."""

    host = "host"
    host_suffix = "host_suffix"
    path = "path"
    path_prefix = "path_prefix"
    path_regex = "path_regex"
    header = "header"
    query = "query"
    method = "method"
    source = "source"


class RuleActionKind(enum.StrEnum):
    """What a content rule does with a request it matches."""

    use = "use"
    redirect = "redirect"
    respond = "respond"
    use_default = "use_default"

    @property
    def answers(self) -> bool:
        """Whether the load balancer answers the client itself (no real server sees it)."""
        return RULE_ACTIONS[self].answers


class HeaderOperationKind(enum.StrEnum):
    """What a ``request_headers`` / ``response_headers`` entry does to a header."""

    set = "set"
    add = "add"
    delete = "delete"
    replace_ = "replace"  # the trailing _ keeps str.replace

    @property
    def takes_value(self) -> bool:
        """Whether it writes a ``value`` (set, add)."""
        return HEADER_OPERATIONS[self].takes_value

    @property
    def takes_regex(self) -> bool:
        """Whether it rewrites with ``regex`` and ``with`` (replace)."""
        return HEADER_OPERATIONS[self].takes_regex


class ProxyProtocol(enum.StrEnum):
    """The PROXY protocol header an l7 service sends its real servers (HAProxy's spec)."""

    none = "none"
    v1 = "v1"
    v2 = "v2"


class Forwarded(enum.StrEnum):
    """How an l7 service tells its real servers who the client is (LoadMaster's AddVia)."""

    x_forwarded_for = "x_forwarded_for"
    via = "via"
    both = "both"
    none = "none"

    @property
    def x_forwarded_for_header(self) -> bool:
        return FORWARDED[self].x_forwarded_for

    @property
    def via_header(self) -> bool:
        return FORWARDED[self].via


# -- the facts -----------------------------------------------------------------------------------

BOTH = frozenset(Mode)
L7_ONLY = frozenset({Mode.l7})
L4_ONLY = frozenset({Mode.l4})
TCP = frozenset({Protocol.tcp})
TCP_AND_UDP = frozenset(Protocol)

# Every method but none keeps a client for ``timeout`` and may fall back to the source
# address; the cookie, header and query methods name what they read.
_PERSISTENCE = frozenset({"timeout", "fallback"})
_COOKIE = _PERSISTENCE | {"cookie"}

# Every check but none has the timing fields; an HTTP check also says what to send and expect.
_CHECK = frozenset({"interval", "timeout", "rise", "fall", "port"})
_HTTP_CHECK = _CHECK | {
    "method", "path", "host", "headers", "post_data", "expect_status", "expect_body"
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ServiceTypeFacts:
    modes: frozenset[Mode]
    tls: TlsUse
    reads_http: bool = False


@dataclass(frozen=True, kw_only=True)
class StartTlsFacts:
    check: CheckType


@dataclass(frozen=True, kw_only=True)
class SchedulerFacts:
    modes: frozenset[Mode]
    weighted: bool
    counts_connections: bool = False
    dynamic: bool = False
    needs_type: ServiceType | None = None
    needs_check: bool = False


@dataclass(frozen=True, kw_only=True)
class PersistenceFacts:
    modes: frozenset[Mode]
    needs_type: ServiceType | None = None
    settings: frozenset[str] = _PERSISTENCE


@dataclass(frozen=True, kw_only=True)
class CheckFacts:
    modes: frozenset[Mode]
    protocols: frozenset[Protocol]
    default_port: int | None = None
    banner: str | None = None
    settings: frozenset[str] = _CHECK


# An l4 service forwards packets without reading them: it can be generic only (auto is
# resolved before anything runs it). TLS is terminated by the l7 proxy: HTTPS (http + tls),
# TLS over TCP (generic + tls, e.g. LDAPS or IMAPS), and STARTTLS, whose upgrade HAProxy cannot
# speak (a STARTTLS front does, engines/stunnel/). RDP wraps TLS inside its own protocol, which
# no proxy here can terminate; `auto` must be resolved before its tls could mean anything.
SERVICE_TYPES: dict[ServiceType, ServiceTypeFacts] = {
    ServiceType.auto: ServiceTypeFacts(modes=BOTH, tls=TlsUse.refused),
    ServiceType.http: ServiceTypeFacts(modes=L7_ONLY, tls=TlsUse.optional, reads_http=True),
    ServiceType.generic: ServiceTypeFacts(modes=BOTH, tls=TlsUse.optional),
    ServiceType.remote_terminal: ServiceTypeFacts(modes=L7_ONLY, tls=TlsUse.refused),
    ServiceType.starttls: ServiceTypeFacts(modes=L7_ONLY, tls=TlsUse.required),
}

# The banner checks of model/check.py, one per protocol (RFC 5321, RFC 9051, RFC 1939).
STARTTLS_PROTOCOLS: dict[StartTls, StartTlsFacts] = {
    StartTls.smtp: StartTlsFacts(check=CheckType.smtp),
    StartTls.imap: StartTlsFacts(check=CheckType.imap),
    StartTls.pop3: StartTlsFacts(check=CheckType.pop3),
}

# The dynamic schedulers run on l7 only: the daemon sets their weights through HAProxy's
# runtime API (daemon/dynamic.py). url_hash reads the request, which an l4 service never sees.
SCHEDULERS: dict[Scheduler, SchedulerFacts] = {
    Scheduler.round_robin: SchedulerFacts(modes=BOTH, weighted=False),
    Scheduler.weighted_round_robin: SchedulerFacts(modes=BOTH, weighted=True),
    Scheduler.least_connection: SchedulerFacts(modes=BOTH, weighted=False, counts_connections=True),
    Scheduler.weighted_least_connection: SchedulerFacts(
        modes=BOTH, weighted=True, counts_connections=True
    ),
    Scheduler.fixed_weighting: SchedulerFacts(modes=BOTH, weighted=True),
    Scheduler.source_ip_hash: SchedulerFacts(modes=BOTH, weighted=True),
    Scheduler.url_hash: SchedulerFacts(modes=L7_ONLY, weighted=True, needs_type=ServiceType.http),
    Scheduler.weighted_response_time: SchedulerFacts(
        modes=L7_ONLY, weighted=True, dynamic=True, needs_check=True
    ),
    Scheduler.adaptive: SchedulerFacts(modes=L7_ONLY, weighted=True, dynamic=True),
}

# An l4 service sees packets, never a request: it can key on the source address only.
PERSISTENCE_METHODS: dict[PersistenceMethod, PersistenceFacts] = {
    PersistenceMethod.none: PersistenceFacts(modes=BOTH, settings=frozenset()),
    PersistenceMethod.source_ip: PersistenceFacts(
        modes=BOTH, settings=frozenset({"timeout", "source_mask", "source_mask6"})
    ),
    PersistenceMethod.super_http: PersistenceFacts(modes=L7_ONLY, needs_type=ServiceType.http),
    PersistenceMethod.server_cookie: PersistenceFacts(
        modes=L7_ONLY, needs_type=ServiceType.http, settings=_COOKIE
    ),
    PersistenceMethod.active_cookie: PersistenceFacts(
        modes=L7_ONLY, needs_type=ServiceType.http, settings=_COOKIE
    ),
    PersistenceMethod.hash_all_cookies: PersistenceFacts(
        modes=L7_ONLY, needs_type=ServiceType.http
    ),
    PersistenceMethod.url_hash: PersistenceFacts(modes=L7_ONLY, needs_type=ServiceType.http),
    PersistenceMethod.host_header: PersistenceFacts(modes=L7_ONLY, needs_type=ServiceType.http),
    PersistenceMethod.query_item: PersistenceFacts(
        modes=L7_ONLY, needs_type=ServiceType.http, settings=_PERSISTENCE | {"query_item"}
    ),
    PersistenceMethod.selected_header: PersistenceFacts(
        modes=L7_ONLY, needs_type=ServiceType.http, settings=_PERSISTENCE | {"header"}
    ),
    PersistenceMethod.ssl_session_id: PersistenceFacts(
        modes=L7_ONLY, needs_type=ServiceType.generic
    ),
    PersistenceMethod.rdp_cookie: PersistenceFacts(
        modes=L7_ONLY, needs_type=ServiceType.remote_terminal
    ),
}

# icmp, dns and rdp are checks HAProxy does not have: Bascule's own checker (health/) runs
# them, for l4 services only. The banners are anchored at the start of the greeting: SMTP and
# FTP greet with 220 (RFC 5321 4.2, RFC 959 4.2), POP3 with +OK (RFC 1939 4), IMAP with
# an untagged OK (RFC 9051 7.1.1).
CHECK_TYPES: dict[CheckType, CheckFacts] = {
    CheckType.none: CheckFacts(modes=BOTH, protocols=TCP_AND_UDP, settings=frozenset()),
    CheckType.tcp: CheckFacts(modes=BOTH, protocols=TCP),
    CheckType.http: CheckFacts(modes=BOTH, protocols=TCP, default_port=80, settings=_HTTP_CHECK),
    CheckType.https: CheckFacts(modes=BOTH, protocols=TCP, default_port=443, settings=_HTTP_CHECK),
    CheckType.icmp: CheckFacts(modes=L4_ONLY, protocols=TCP_AND_UDP),
    CheckType.smtp: CheckFacts(modes=BOTH, protocols=TCP, banner=r"^220"),
    CheckType.ftp: CheckFacts(modes=BOTH, protocols=TCP, banner=r"^220"),
    CheckType.pop3: CheckFacts(modes=BOTH, protocols=TCP, banner=r"^\+OK"),
    CheckType.imap: CheckFacts(modes=BOTH, protocols=TCP, banner=r"^\* OK"),
    CheckType.ldap: CheckFacts(modes=BOTH, protocols=TCP),
    CheckType.dns: CheckFacts(modes=L4_ONLY, protocols=frozenset({Protocol.udp})),
    CheckType.rdp: CheckFacts(modes=L4_ONLY, protocols=TCP),
    CheckType.binary: CheckFacts(
        modes=BOTH, protocols=TCP, settings=_CHECK | {"send_hex", "expect_hex"}
    ),
}


@dataclass(frozen=True, kw_only=True)
class RuleActionFacts:
    answers: bool


@dataclass(frozen=True, kw_only=True)
class HeaderOperationFacts:
    takes_value: bool = False
    takes_regex: bool = False


@dataclass(frozen=True, kw_only=True)
class ForwardedFacts:
    x_forwarded_for: bool
    via: bool


# redirect and respond are answered by the load balancer; use and use_default pick a pool.
RULE_ACTIONS: dict[RuleActionKind, RuleActionFacts] = {
    RuleActionKind.use: RuleActionFacts(answers=False),
    RuleActionKind.redirect: RuleActionFacts(answers=True),
    RuleActionKind.respond: RuleActionFacts(answers=True),
    RuleActionKind.use_default: RuleActionFacts(answers=False),
}

HEADER_OPERATIONS: dict[HeaderOperationKind, HeaderOperationFacts] = {
    HeaderOperationKind.set: HeaderOperationFacts(takes_value=True),
    HeaderOperationKind.add: HeaderOperationFacts(takes_value=True),
    HeaderOperationKind.delete: HeaderOperationFacts(),
    HeaderOperationKind.replace_: HeaderOperationFacts(takes_regex=True),
}

FORWARDED: dict[Forwarded, ForwardedFacts] = {
    Forwarded.x_forwarded_for: ForwardedFacts(x_forwarded_for=True, via=False),
    Forwarded.via: ForwardedFacts(x_forwarded_for=False, via=True),
    Forwarded.both: ForwardedFacts(x_forwarded_for=True, via=True),
    Forwarded.none: ForwardedFacts(x_forwarded_for=False, via=False),
}
