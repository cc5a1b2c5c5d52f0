"""Persistence -> HAProxy stick tables, cookies and stick rules, as frozen values.

Where this sits in the flow of a change: ``view.build_view`` asks ``persistence_view`` what
one virtual service's persistence needs (its stick table, the rules that fill and read it, the
``cookie`` of each server) and prints it through the dumb template; the engine and the daemon
use ``table_names`` to list and clear a service's tables at run time (``show table``,
``clear table``). Pure: no I/O. Section numbers refer to HAProxy 2.6's ``configuration.txt``.

Every method but ``active_cookie`` keeps a stick table (4.2 "stick-table") named after the
service's ``listen`` section, expiring after ``persistence.timeout``; ``fallback: source_ip``
adds a second table in its own ``backend <service>.src`` section (a backend used only for its
table; service names never contain '.', so it cannot collide with a service). Both tables
belong to the local ``peers`` section when the daemon gives one, which is how HAProxy 2.6
hands the entries of the old worker to the new one on a reload (3.5 "Peers").

``PERSISTENCE`` is the translation, one function per method the model allows on l7; the key
of each (documented in docs/reference.md, "Persistence on l7"):

- ``source_ip``: the client address, masked by ``source_mask`` (IPv4) or ``source_mask6``
  (IPv6) (7.3.1 "ipmask").
- ``active_cookie``: HAProxy's own cookie (4.2 "cookie ... insert indirect nocache"), whose
  value names the server; idle for longer than ``timeout`` it is ignored ("maxidle").
- ``server_cookie``: the application's cookie, learnt from the server's Set-Cookie
  ("stick store-response res.cook") and matched on the client's Cookie ("stick match
  req.cook").
- ``super_http``: SHA-1 of User-Agent, Accept-Language and Accept-Encoding joined by '|'
  (absent without a User-Agent).
- ``hash_all_cookies``: SHA-1 of the whole Cookie header; ``url_hash``: SHA-1 of the path
  (without the query string, which often carries per-request noise).
- ``host_header``: the Host header, lower case; ``query_item``: the named query parameter;
  ``selected_header``: the named header (its last occurrence, in full).
- ``ssl_session_id``: the TLS session ID of the ClientHello, and the one the server gives in
  its ServerHello (learnt, for the client's next, resumed, session). Only TLS 1.2 and older
  session-ID resumption is seen: TLS 1.3 and session tickets carry no stable ID.
- ``rdp_cookie``: the ``mstshash`` cookie of the RDP connection request, plus HAProxy's
  "persist rdp-cookie" for a routing token that names a server.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from bascule.model import PersistenceFallback, PersistenceMethod, RealServer, VirtualService
from bascule.model.sub_service import POOL_SEPARATOR

# 4.2 "stick-table ... size": entries are allocated as they come, so the size is a bound.
TABLE_SIZE = "1m"
# Longer strings are cut to this length (still a stable key).
STRING_LENGTH = 128
SHA1_LENGTH = 20
# RFC 5246 7.4.1.2: "opaque SessionID<0..32>".
SESSION_ID_LENGTH = 32
# 4.2 "tcp-request inspect-delay": how long a TLS or RDP service waits for the client's first
# bytes (its ClientHello, its connection request) before choosing a server without them.
INSPECT_DELAY = "5s"
FALLBACK_SUFFIX = ".src"
# A sub-service's section: "<service>_<sub-service>" (section_name).
SUB_SERVICE_JOINER = "_"
SUPER_HTTP_HEADERS = ("user-agent", "accept-language", "accept-encoding")
# What may appear inside a sample fetch argument (7.1 "arguments"): no quote, backslash,
# comma, parenthesis or space, which the argument parser gives a meaning to. The model's
# cookie and header names fit, except a header name with a single quote.
_ARGUMENT = re.compile(r"^[A-Za-z0-9!#$%&*+.^_`|~-]+$")
# Unquoted words: what needs no quoting in a config line (2.2).
_PLAIN = re.compile(r"^[A-Za-z0-9_.:(),|-]+$")
# 7.2 "Using ACLs to form conditions": anonymous ACL braces, negation and "or".
_ACL_SYNTAX = frozenset({"{", "}", "!{", "||"})


@dataclass(frozen=True, kw_only=True)
class PersistenceView:
    """What one service's persistence adds: lines in its section, a fallback table section,
    and a cookie value per server (by real server key)."""

    lines: tuple[str, ...] = ()
    fallback_table: str | None = None
    fallback_lines: tuple[str, ...] = ()
    server_cookies: dict[str, str] | None = None


def section_name(vs: VirtualService) -> str:
    """The HAProxy section of a pool: the service's name, or ``site_api`` for the sub-service
    pool ``site/api`` ('/' separates proxy and server in HAProxy's references; '_' is in no
    service or sub-service name, so the name cannot clash)."""
    return vs.name.replace(POOL_SEPARATOR, SUB_SERVICE_JOINER)


def fallback_table_name(vs: VirtualService) -> str:
    return f"{section_name(vs)}{FALLBACK_SUFFIX}"


def table_names(vs: VirtualService) -> tuple[str, ...]:
    """The stick tables of ``vs`` (its ``listen`` section, then its fallback), maybe none."""
    names: list[str] = []
    if _stickiness(vs, None).table:
        names.append(section_name(vs))
    if vs.persistence.fallback is PersistenceFallback.source_ip:
        names.append(fallback_table_name(vs))
    return tuple(names)


def server_cookie_value(rs: RealServer) -> str:
    """The active cookie's value for ``rs``: stable, unique in practice, and not the address
    (which a client has no business learning)."""
    return hashlib.sha1(rs.key.encode(), usedforsecurity=False).hexdigest()[:12]


def _argument(text: str) -> str:
    if not _ARGUMENT.fullmatch(text):
        raise ValueError(f"{text!r} cannot be a sample fetch argument")
    return text


def _word(text: str) -> str:
    """A sample expression or condition as one config word, strongly quoted if needed."""
    if _PLAIN.fullmatch(text):
        return text
    if "'" in text:
        raise ValueError(f"{text!r} cannot be written as one HAProxy word")
    return f"'{text}'"


def _source_key(vs: VirtualService) -> tuple[str, str]:
    """(table type, key) of a source-address table.

    A service with an IPv6 VIP (IPv6 or dual-stack) keeps an ``ipv6`` table, where IPv4
    clients are stored as ``::ffff:a.b.c.d`` (4.2 "stick-table": "type ipv6"); ``ipmask``
    masks an IPv4 sample with its first argument and an IPv6 one with its second (7.3.1).
    """
    mask4, mask6 = vs.persistence.source_mask, vs.persistence.source_mask6
    if any(":" in address for address in vs.addresses):
        has_ipv4 = any(":" not in address for address in vs.addresses)
        whole = mask6 == 128 and (mask4 == 32 or not has_ipv4)
        return "ipv6", "src" if whole else f"src,ipmask({mask4 if has_ipv4 else 32},{mask6})"
    return "ip", "src" if mask4 == 32 else f"src,ipmask({mask4})"


def _table(kind: str, timeout: int, peers: str | None) -> str:
    line = f"stick-table type {kind} size {TABLE_SIZE} expire {timeout}s"
    return f"{line} peers {peers}" if peers else line


@dataclass(frozen=True, kw_only=True)
class _Stickiness:
    """What one method adds to its service's section: its lines, whether they declare the
    section's stick table, the condition under which a client has no key (the fallback
    applies then; None: never), and each server's cookie value."""

    lines: tuple[str, ...] = ()
    table: bool = False
    keyless: str | None = None
    cookies: dict[str, str] | None = None


def _none(vs: VirtualService, peers: str | None) -> _Stickiness:
    return _Stickiness()


def _source_ip(vs: VirtualService, peers: str | None) -> _Stickiness:
    p = vs.persistence
    kind, key = _source_key(vs)
    return _Stickiness(lines=(_table(kind, p.timeout, peers), f"stick on {key}"), table=True)


def _active_cookie(vs: VirtualService, peers: str | None) -> _Stickiness:
    # 4.2 "cookie": "insert" adds Set-Cookie naming the server, "indirect" hides it from
    # the server, "nocache" keeps shared caches from storing it; "maxidle" ignores a
    # cookie unused for longer than the timeout (HAProxy dates it).
    p = vs.persistence
    name = _argument(p.cookie)
    return _Stickiness(
        lines=(f"cookie {_word(name)} insert indirect nocache maxidle {p.timeout}s",),
        keyless=f"!{{ req.cook({name}) -m found }}",
        cookies={rs.key: server_cookie_value(rs) for rs in vs.real_servers},
    )


def _server_cookie(vs: VirtualService, peers: str | None) -> _Stickiness:
    p = vs.persistence
    name = _argument(p.cookie)
    lines = (
        _table(f"string len {STRING_LENGTH}", p.timeout, peers),
        # 4.2 "stick match": look the client's cookie up; "stick store-response": learn
        # the value the server sets, with the server that set it.
        _rule("stick match", f"req.cook({name})"),
        _rule("stick store-response", f"res.cook({name})"),
    )
    return _Stickiness(lines=lines, table=True, keyless=f"!{{ req.cook({name}) -m found }}")


def _ssl_session_id(vs: VirtualService, peers: str | None) -> _Stickiness:
    # The 4.2 "stick store-response" example, with 2.6 fetch names: the session ID is the
    # length-prefixed field at byte 43 of a ClientHello/ServerHello record (5-byte record
    # header, 4-byte handshake header, 2-byte version, 32-byte random). A ClientHello with
    # an empty ID (a new session) is not a key: it would send every new client to one server.
    hello = "{ req.ssl_hello_type 1 }"
    lines = (
        _table(f"binary len {SESSION_ID_LENGTH}", vs.persistence.timeout, peers),
        f"tcp-request inspect-delay {INSPECT_DELAY}",
        f"tcp-request content accept if {hello}",
        # Despite the manual's example ("no timeout on response inspect delay by default"),
        # 2.6.12 evaluates the response rules before the ServerHello is complete without one,
        # and never learns the server's session ID.
        f"tcp-response inspect-delay {INSPECT_DELAY}",
        "tcp-response content accept if { res.ssl_hello_type 2 }",
        f"stick on req.payload_lv(43,1) if {hello} !{{ req.payload(43,1) -m bin 00 }}",
        "stick store-response res.payload_lv(43,1) if { res.ssl_hello_type 2 }",
    )
    keyless = "!{ req.ssl_hello_type 1 } || { req.payload(43,1) -m bin 00 }"
    return _Stickiness(lines=lines, table=True, keyless=keyless)


def _request_key(
    vs: VirtualService,
    peers: str | None,
    *,
    kind: str,
    key: str,
    found: str | None = None,
    before: tuple[str, ...] = (),
) -> _Stickiness:
    """A table of ``kind`` keyed by the sample ``key`` of each request where the sample
    ``found`` (by default the key itself) is found; ``before``: the lines that make the key."""
    present = f"{{ {found or key} -m found }}"
    lines = (_table(kind, vs.persistence.timeout, peers), *before, _rule("stick on", key, present))
    return _Stickiness(lines=lines, table=True, keyless=f"!{present}")


_STRING = f"string len {STRING_LENGTH}"
_SHA1 = f"binary len {SHA1_LENGTH}"


def _super_http(vs: VirtualService, peers: str | None) -> _Stickiness:
    # 4.2 "http-request set-var-fmt": one string of the headers, '|'-separated; no key
    # without a User-Agent.
    fields = "|".join(f"%[req.fhdr({name})]" for name in SUPER_HTTP_HEADERS)
    return _request_key(
        vs,
        peers,
        kind=_SHA1,
        key="var(txn.bascule_fingerprint),sha1",
        found="req.fhdr(user-agent)",
        before=(f"http-request set-var-fmt(txn.bascule_fingerprint) {fields}",),
    )


def _hash_all_cookies(vs: VirtualService, peers: str | None) -> _Stickiness:
    cookies = "req.fhdr(cookie)"
    return _request_key(vs, peers, kind=_SHA1, key=f"{cookies},sha1", found=cookies)


def _url_hash(vs: VirtualService, peers: str | None) -> _Stickiness:
    return _request_key(vs, peers, kind=_SHA1, key="path,sha1", found="path")


def _host_header(vs: VirtualService, peers: str | None) -> _Stickiness:
    return _request_key(vs, peers, kind=_STRING, key="req.hdr(host),lower", found="req.hdr(host)")


def _query_item(vs: VirtualService, peers: str | None) -> _Stickiness:
    key = f"urlp({_argument(vs.persistence.query_item)})"
    return _request_key(vs, peers, kind=_STRING, key=key)


def _selected_header(vs: VirtualService, peers: str | None) -> _Stickiness:
    key = f"req.fhdr({_argument(vs.persistence.header)})"
    return _request_key(vs, peers, kind=_STRING, key=key)


def _rdp_cookie(vs: VirtualService, peers: str | None) -> _Stickiness:
    # 4.2 "persist rdp-cookie" and the 7.4 RDP_COOKIE example: wait for the connection
    # request, follow a routing token naming a server.
    before = (
        f"tcp-request inspect-delay {INSPECT_DELAY}",
        "tcp-request content accept if RDP_COOKIE",
        "persist rdp-cookie",
    )
    return _request_key(vs, peers, kind=_STRING, key="req.rdp_cookie(mstshash)", before=before)


# How HAProxy keeps a client on its server, for every persistence method the model allows on l7.
PERSISTENCE: dict[PersistenceMethod, Callable[[VirtualService, str | None], _Stickiness]] = {
    PersistenceMethod.none: _none,
    PersistenceMethod.source_ip: _source_ip,
    PersistenceMethod.active_cookie: _active_cookie,
    PersistenceMethod.server_cookie: _server_cookie,
    PersistenceMethod.ssl_session_id: _ssl_session_id,
    PersistenceMethod.super_http: _super_http,
    PersistenceMethod.hash_all_cookies: _hash_all_cookies,
    PersistenceMethod.url_hash: _url_hash,
    PersistenceMethod.host_header: _host_header,
    PersistenceMethod.query_item: _query_item,
    PersistenceMethod.selected_header: _selected_header,
    PersistenceMethod.rdp_cookie: _rdp_cookie,
}


def _stickiness(vs: VirtualService, peers: str | None) -> _Stickiness:
    translate = PERSISTENCE.get(vs.persistence.method)
    if translate is None:
        raise ValueError(f"persistence {vs.persistence.method.value} has no HAProxy translation")
    return translate(vs, peers)


def persistence_view(vs: VirtualService, peers: str | None) -> PersistenceView:
    """The HAProxy lines of ``vs``'s persistence (``peers``: the local peers section)."""
    p = vs.persistence
    own = _stickiness(vs, peers)
    lines = list(own.lines)
    fallback_table: str | None = None
    fallback_lines: tuple[str, ...] = ()
    if p.fallback is PersistenceFallback.source_ip and own.keyless is not None:
        fallback_table = fallback_table_name(vs)
        kind, key = _source_key(vs)
        fallback_lines = (_table(kind, p.timeout, peers),)
        lines.append(_rule("stick on", key, own.keyless, table=fallback_table))
    return PersistenceView(
        lines=tuple(lines),
        fallback_table=fallback_table,
        fallback_lines=fallback_lines,
        server_cookies=own.cookies,
    )


def _rule(action: str, key: str, condition: str | None = None, *, table: str | None = None) -> str:
    words = [action, _word(key)]
    if table is not None:
        words += ["table", table]
    line = " ".join(words)
    if condition is None:
        return line
    # A condition is ACL words; only the braces' content may need quoting, and the key
    # alphabet (see _ARGUMENT) has nothing a condition word would misread except '#'.
    return f"{line} if {_condition(condition)}"


def _condition(condition: str) -> str:
    return " ".join(word if word in _ACL_SYNTAX else _word(word) for word in condition.split())
