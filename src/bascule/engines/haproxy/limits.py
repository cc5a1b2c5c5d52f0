"""A service's ``limits`` as HAProxy lines: stick-table counters per client, per-service caps.

Where this sits in the flow of a change: ``view.py`` asks ``limits_view`` for a service's lines
and prints them in its ``listen`` section, and the counters' table as a ``backend`` of its own
(a section holds one stick table, and persistence may have taken the service's). Pure.

- ``max_connections``: 4.2 "maxconn" of the section: connections beyond it wait in the
  kernel's accept queue (they are not refused);
- ``connections_per_second``: 4.2 "rate-limit sessions": new connections beyond the rate wait;
- ``per_client``: every client's source is tracked in ``<service>_limits`` (4.2
  "stick-table ... store conn_cur,conn_rate(1s),http_req_rate(1s)", type ipv6: IPv4 clients
  are kept as ::ffff:a.b.c.d), unless an ``exempt`` list holds it (4.2 "tcp-request
  connection track-sc0 ... unless"); an untracked client's ``sc0_*`` fetches return nothing,
  so no limit ever matches it. An http service answers a request over a limit with
  ``response.code`` and ``Retry-After`` (4.2 "http-request deny deny_status ... hdr"); a tcp
  service closes a connection over a limit (4.2 "tcp-request connection reject").

A content rule's and a sub-service's ``limits`` count HTTP requests per client (the model
refuses the rest), in a table each (``<service>.rules.<rule>``, ``<section>_limits``), and
are tracked per request (4.2 "http-request track-sc1|sc2"): a stream's counters, not the
connection's, so the next request of a keep-alive connection is tracked only if it matches
too (the fetches 7.3.3 "sc1_http_req_rate" read the stream's counter first, and nothing tracks
sc1 or sc2 on a connection). HAProxy 2.6 has three counters (sc0..sc2): sc0 is the service's
(per connection, above), sc1 the matched rule's (one rule matches a request, so one counter
serves them all), sc2 the sub-service's (in its ``backend``, after the rules sent the request
there). A rule's limit runs right after the rules' matches, before its action; a
sub-service's first in its backend. Both answer like the service's, with their own
``response`` or else the service's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bascule.engines.base import ClientLoad
from bascule.engines.haproxy.content import RULE_VAR
from bascule.engines.haproxy.persistence import section_name
from bascule.engines.haproxy.quoting import token
from bascule.engines.haproxy.runtime import StickEntry
from bascule.model import VirtualService
from bascule.model.filtering import AccessList
from bascule.model.limits import LimitResponse, Limits

TABLE_SUFFIX = "_limits"
#: A rule's table: ``<service>.rules.<rule>`` ('.' is in no service or rule name).
RULE_TABLE_INFIX = ".rules."
#: The sticky counters of a rule's limit and of a sub-service's (sc0 is the service's).
RULE_COUNTER = 1
POOL_COUNTER = 2
#: What a rule's and a sub-service's tables keep: HTTP requests of the last second.
REQUEST_RATE = "http_req_rate(1s)"
#: How long a client's counters outlive its last connection (longer than the 1 s rates).
EXPIRE = "30s"
TABLE_SIZE = "1m"
EXEMPT_ACL = "bascule_limits_exempt"
#: Entries per ``acl`` line of an exempt list (repeated lines of one ACL are ORed, 7.1).
ACL_CHUNK = 64


@dataclass(frozen=True, kw_only=True)
class LimitsView:
    """The lines of a service's limits: options, rules (first in the section) and its table."""

    options: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    table: tuple[str, tuple[str, ...]] | None = None


def table_name(vs: VirtualService) -> str:
    """The table of a service's limits, or of a sub-service pool's (``site_api_limits``)."""
    return token(f"{section_name(vs)}{TABLE_SUFFIX}")


def rule_table_name(vs: VirtualService, rule: str) -> str:
    return token(f"{vs.name}{RULE_TABLE_INFIX}{rule}")


@dataclass(frozen=True, kw_only=True)
class RequestLimitsView:
    """A service's rules' limits (lines after the rules' matches) and a sub-service's (the
    first lines of its backend), with the tables they count in."""

    rules: tuple[str, ...] = ()
    tables: tuple[tuple[str, tuple[str, ...]], ...] = ()


def rule_limits_view(vs: VirtualService, lists: Mapping[str, AccessList]) -> RequestLimitsView:
    """The limits of ``vs``'s content rules: rule N's clients are tracked in its table when
    rule N matched (``txn.bascule_rule``) and refused over its rate."""
    rules: list[str] = []
    tables = []
    for number, rule in enumerate(vs.rules, start=1):
        if rule.limits is None:
            continue
        table = rule_table_name(vs, rule.name)
        matched = f"{{ var({RULE_VAR}) -m int {number} }}"
        rules += _request_limit(
            rule.limits, vs.limits, lists, RULE_COUNTER, table, f"bascule_rule{number}", matched
        )
        tables.append((table, _request_table()))
    return RequestLimitsView(rules=tuple(rules), tables=tuple(tables))


def pool_limits_view(
    pool: VirtualService, service: Limits | None, lists: Mapping[str, AccessList]
) -> RequestLimitsView:
    """A sub-service pool's limits (``pool.limits``, the sub-service's; ``service``: its
    service's, whose ``response`` it answers with unless it gives its own)."""
    if pool.limits is None:
        return RequestLimitsView()
    table = table_name(pool)
    rules = _request_limit(pool.limits, service, lists, POOL_COUNTER, table, "bascule_pool", "")
    return RequestLimitsView(rules=tuple(rules), tables=((table, _request_table()),))


def _request_limit(
    limits: Limits,
    service: Limits | None,
    lists: Mapping[str, AccessList],
    counter: int,
    table: str,
    acl_prefix: str,
    when: str,
) -> list[str]:
    exempt_acl = f"{acl_prefix}_exempt"
    lines = _exempt_acls(limits.exempt, lists, exempt_acl)
    unless = f" !{exempt_acl}" if lines else ""
    guard = f" if {when}{unless}" if when else (f" unless {exempt_acl}" if lines else "")
    lines.append(f"http-request track-sc{counter} src table {table}{guard}")
    rate = limits.per_client.requests_per_second if limits.per_client is not None else None
    if rate is not None:
        over = f"{{ sc{counter}_http_req_rate gt {rate} }}"
        lines.append(f"{_deny(limits.answer(service))} if {when + ' ' if when else ''}{over}")
    return lines


def _request_table() -> tuple[str, ...]:
    return (f"stick-table type ipv6 size {TABLE_SIZE} expire {EXPIRE} store {REQUEST_RATE}",)


def _deny(response: LimitResponse) -> str:
    answer = f"http-request deny deny_status {response.code}"
    if response.retry_after is not None:
        answer += f" hdr Retry-After {response.retry_after}"
    return answer


def limits_view(vs: VirtualService, http: bool, lists: Mapping[str, AccessList]) -> LimitsView:
    limits = vs.limits
    if limits is None:
        return LimitsView()
    options: list[str] = []
    if limits.max_connections is not None:
        options.append(f"maxconn {limits.max_connections}")
    if limits.connections_per_second is not None:
        options.append(f"rate-limit sessions {limits.connections_per_second}")
    per_client = limits.per_client
    if per_client is None or not per_client.any:
        return LimitsView(options=tuple(options))
    table = table_name(vs)
    rules = _exempt_acls(limits.exempt, lists, EXEMPT_ACL)
    unless = f" unless {EXEMPT_ACL}" if rules else ""
    rules.append(f"tcp-request connection track-sc0 src table {table}{unless}")
    over: list[str] = []
    if per_client.connections is not None:
        over.append(f"{{ sc0_conn_cur gt {per_client.connections} }}")
    if per_client.connections_per_second is not None:
        over.append(f"{{ sc0_conn_rate gt {per_client.connections_per_second} }}")
    if http:
        if per_client.requests_per_second is not None:
            over.append(f"{{ sc0_http_req_rate gt {per_client.requests_per_second} }}")
        answer = _deny(limits.response)
        rules += [f"{answer} if {condition}" for condition in over]
    else:
        rules += [f"tcp-request connection reject if {condition}" for condition in over]
    stored = "conn_cur,conn_rate(1s)" + (",http_req_rate(1s)" if http else "")
    lines = (f"stick-table type ipv6 size {TABLE_SIZE} expire {EXPIRE} store {stored}",)
    return LimitsView(options=tuple(options), rules=tuple(rules), table=(table, lines))


def _exempt_acls(names: Sequence[str], lists: Mapping[str, AccessList], acl: str) -> list[str]:
    """``acl <acl> src ...`` over the exempt lists' entries (validated addresses and
    networks: printed as they are), a few dozen a line."""
    entries = [entry for name in names for entry in lists[name].addresses]
    return [
        f"acl {acl} src {' '.join(entries[i : i + ACL_CHUNK])}"
        for i in range(0, len(entries), ACL_CHUNK)
    ]


# -- who is being limited: the table's counters (``show table <service>_limits``) ----------------


def client_loads(
    limits: Limits | None, entries: Sequence[StickEntry], *, top: int
) -> list[ClientLoad]:
    """The ``top`` clients of a limits table (a service's, a rule's or a sub-service's:
    ``limits`` are its), busiest first (by request rate, then connection rate, then
    connections), each saying whether a limit holds it now."""
    per_client = limits.per_client if limits is not None else None
    loads = []
    for entry in entries:
        connections = _counter(entry.data, "conn_cur")
        connection_rate = _counter(entry.data, "conn_rate(1000)")
        request_rate = _counter(entry.data, "http_req_rate(1000)")
        over = per_client is not None and any(
            limit is not None and value > limit
            for value, limit in (
                (connections, per_client.connections),
                (connection_rate, per_client.connections_per_second),
                (request_rate, per_client.requests_per_second),
            )
        )
        loads.append(
            ClientLoad(
                client=entry.key.removeprefix("::ffff:"),
                connections=connections,
                connections_per_second=connection_rate,
                requests_per_second=request_rate,
                limited=over,
            )
        )
    loads.sort(
        key=lambda load: (
            -load.requests_per_second,
            -load.connections_per_second,
            -load.connections,
            load.client,
        )
    )
    return loads[:top]


def _counter(data: Mapping[str, str], name: str) -> int:
    value = data.get(name, "0")
    return int(value) if value.isdigit() else 0
