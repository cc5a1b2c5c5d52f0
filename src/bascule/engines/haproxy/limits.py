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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bascule.engines.base import ClientLoad
from bascule.engines.haproxy.quoting import token
from bascule.engines.haproxy.runtime import StickEntry
from bascule.model import VirtualService
from bascule.model.filtering import AccessList

TABLE_SUFFIX = "_limits"
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
    return token(f"{vs.name}{TABLE_SUFFIX}")


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
    rules = list(_exempt_acls(limits.exempt, lists))
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
        answer = f"http-request deny deny_status {limits.response.code}"
        if limits.response.retry_after is not None:
            answer += f" hdr Retry-After {limits.response.retry_after}"
        rules += [f"{answer} if {condition}" for condition in over]
    else:
        rules += [f"tcp-request connection reject if {condition}" for condition in over]
    stored = "conn_cur,conn_rate(1s)" + (",http_req_rate(1s)" if http else "")
    lines = (f"stick-table type ipv6 size {TABLE_SIZE} expire {EXPIRE} store {stored}",)
    return LimitsView(options=tuple(options), rules=tuple(rules), table=(table, lines))


def _exempt_acls(names: Sequence[str], lists: Mapping[str, AccessList]) -> list[str]:
    """``acl bascule_limits_exempt src ...`` over the exempt lists' entries (validated
    addresses and networks: printed as they are), a few dozen a line."""
    entries = [entry for name in names for entry in lists[name].addresses]
    return [
        f"acl {EXEMPT_ACL} src {' '.join(entries[i : i + ACL_CHUNK])}"
        for i in range(0, len(entries), ACL_CHUNK)
    ]


# -- who is being limited: the table's counters (``show table <service>_limits``) ----------------


def client_loads(
    vs: VirtualService, entries: Sequence[StickEntry], *, top: int
) -> list[ClientLoad]:
    """The ``top`` clients of a service's limits table, busiest first (by request rate, then
    connection rate, then connections), each saying whether a limit holds it now."""
    limits = vs.limits
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
