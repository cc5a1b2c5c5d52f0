"""Real servers added to or removed from running backends through the runtime API, no reload.

A change whose only difference from the running configuration is real servers added to or
removed from existing pools need not reload HAProxy (a reload of 10,000 servers takes the new
worker 0.4-1 s to parse them and the server-state file: issue 15). HAProxy 2.6 creates a
server in a running backend with ``add server`` and removes one with ``del server``
(management.txt 9.3). ``server_edits`` compares the views of the changed services and says
either the commands that take the running worker there or, as a sentence, why the change
must reload as before (the *eligibility*). What qualifies:

- the views are the same but for their server lines; a server present in both differs at most
  in its weight and ``disabled`` (its state: the reconciler's next pass sets those at runtime,
  as it does after a reload);
- the backend balances with a dynamic algorithm (management.txt "add server": roundrobin,
  leastconn, first, and ``hash-type consistent``), and is not disabled;
- every keyword of an added server is one ``add server`` supports (``KEYWORD_ARGUMENTS``; no
  ``default-server`` exists in Bascule's configurations, so the line carries all of them);
  ``cookie`` is not supported in 2.6, so active-cookie persistence reloads, and so does a
  ``backup`` server (fixed weighting: the order of the backups decides which one serves);
- a pool with stick tables (persistence, whose entries name servers by id) keeps the ids a
  fresh load of the new text gives (servers numbered in the order of the section): servers
  are added after all the others, each with that ``id``, and only the last ones are removed.
  A sorry server is the pool's last, so a pool with stick tables and one reloads to add.

Ids elsewhere do not matter: the server-state file a reload reads is matched by server name
(checked with HAProxy 2.6.12: a reload that renumbers keeps each server's weight and state),
and Bascule observes servers by name (``show servers state``, ``show stat``).

A server ``add server`` creates is in maintenance and its check is off (management.txt): it is
then put in the state a fresh load would give it (ready unless ``disabled``; a drained one has
weight 0) and its check enabled. A removed server is put in maintenance (no new traffic) and
deleted; HAProxy refuses ``del server`` while it has connections, and the engine then reloads
(the old worker finishes them, as with any reload) rather than cut them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from bascule.engines.haproxy.runtime import (
    AdminState,
    add_server,
    del_server,
    enable_health,
    set_state,
)
from bascule.engines.haproxy.servers import ServerView
from bascule.engines.haproxy.view import HaproxyView, ProxyView

# management.txt "add server": the keywords of 2.6's list that Bascule's server lines carry,
# with how many arguments each takes. A word the table does not know makes the change reload.
KEYWORD_ARGUMENTS: dict[str, int] = {
    "weight": 1,
    "disabled": 0,
    "maxconn": 1,
    "id": 1,
    "check": 0,
    "inter": 1,
    "rise": 1,
    "fall": 1,
    "port": 1,
    "check-ssl": 0,
    "check-sni": 1,
    "check-send-proxy": 0,
    "send-proxy": 0,
    "send-proxy-v2": 0,
    "slowstart": 1,
    "ssl": 0,
    "verify": 1,
    "ca-file": 1,
    "sni": 1,
    "verifyhost": 1,
    "source": 1,
    "usesrc": 1,
}

# 4.2 "balance": the algorithms whose weights are dynamic (a hash only with "hash-type
# consistent"); "add server" refuses a backend using any other.
DYNAMIC_ALGORITHMS = frozenset({"roundrobin", "leastconn", "first"})
CONSISTENT = "consistent"

# The CLI splits its arguments on spaces and takes no quotes (management.txt 9.3): a quoted
# word of the server line is sent without its quotes when nothing in it needs them.
_QUOTED = re.compile(r"'([A-Za-z0-9_.:/(),=@+-]+)'")
_PLAIN = re.compile(r"[A-Za-z0-9_.:/(),=@+\[\]-]+")


@dataclass(frozen=True, kw_only=True)
class AddedServer:
    """A server to create in a running backend: its ``add server`` arguments (address first)
    and what to do after (its check on, its admin state)."""

    backend: str
    server: str
    arguments: tuple[str, ...]
    checked: bool
    disabled: bool

    def commands(self) -> list[str]:
        commands = [add_server(self.backend, self.server, self.arguments)]
        if self.checked:
            commands.append(enable_health(self.backend, self.server))
        if not self.disabled:  # a new server is in maintenance; "disabled" leaves it there
            commands.append(set_state(self.backend, self.server, AdminState.READY))
        return commands


@dataclass(frozen=True, kw_only=True)
class ServerEdits:
    """What takes the running worker from one configuration to the next without a reload."""

    added: tuple[AddedServer, ...] = ()
    removed: tuple[tuple[str, str], ...] = ()  # (backend, server)

    @property
    def empty(self) -> bool:
        return not self.added and not self.removed

    def __add__(self, other: ServerEdits) -> ServerEdits:
        return ServerEdits(added=self.added + other.added, removed=self.removed + other.removed)

    def add_commands(self) -> list[str]:
        return [command for server in self.added for command in server.commands()]

    def maint_commands(self) -> list[str]:
        """The removed servers out of rotation (HAProxy deletes only servers in maintenance,
        and drops their idle connections then)."""
        return [set_state(backend, server, AdminState.MAINT) for backend, server in self.removed]

    def delete_commands(self) -> list[str]:
        """Each removed server deleted: refused while it has connections, so each is sent
        on its own, after ``maint_commands``."""
        return [del_server(backend, server) for backend, server in self.removed]


def server_edits(
    old: HaproxyView, new: HaproxyView, *, tables: Collection[str] = ()
) -> ServerEdits | str:
    """The edits that take a worker running ``old`` to ``new`` (the views of the changed
    services), or why a reload is needed. ``tables``: the proxies with stick tables."""
    if _without_servers(old) != replace(_without_servers(new), descriptors=old.descriptors):
        return "more than real servers changed"
    edits = ServerEdits()
    for before, after in zip(old.proxies, new.proxies, strict=True):
        found = _proxy_edits(before, after, sticky=after.name in tables)
        if isinstance(found, str):
            return f"{after.name}: {found}"
        edits += found
    return edits


def dynamic_arguments(server: ServerView) -> tuple[str, ...] | str:
    """The ``add server`` arguments of ``server`` (its whole line but ``server <name>``), or
    why ``add server`` cannot create it."""
    if server.cookie is not None:
        return "cookie persistence (HAProxy 2.6 servers added at runtime take no cookie)"
    if server.backup:
        return "a backup server (the order of the backups decides which serves)"
    address = _plain(server.address)
    if address is None:
        return "an address the runtime API cannot take"
    arguments = [address]
    words = server.keywords
    index = 0
    while index < len(words):
        keyword = words[index]
        count = KEYWORD_ARGUMENTS.get(keyword)
        if count is None:
            return f"keyword {keyword!r} (not one Bascule adds at runtime)"
        values = [_plain(word) for word in words[index + 1 : index + 1 + count]]
        plain = [value for value in values if value is not None]
        if len(plain) < count:
            return f"keyword {keyword!r} with a value the runtime API cannot take"
        arguments += [keyword, *plain]
        index += 1 + count
    return tuple(arguments)


def _proxy_edits(before: ProxyView, after: ProxyView, *, sticky: bool) -> ServerEdits | str:
    old = {server.name: server for server in before.servers}
    new = {server.name: server for server in after.servers}
    for name in old.keys() & new.keys():
        same = replace(new[name], weight=old[name].weight, disabled=old[name].disabled)
        if same != old[name]:
            return f"server {name} changed beyond its weight and state"
    kept = [s.name for s in before.servers if s.name in new]
    if [s.name for s in after.servers if s.name in old] != kept:
        return "the servers' order changed"
    added = [server for server in after.servers if server.name not in old]
    removed = [server.name for server in before.servers if server.name not in new]
    if not added and not removed:
        return ServerEdits()
    if after.disabled:
        return "the service is disabled"
    if after.balance not in DYNAMIC_ALGORITHMS and after.hash_type != CONSISTENT:
        return f"balance {after.balance} is not a dynamic algorithm"
    # with stick tables, ids as a fresh load of the new text numbers them: kept ones first
    if sticky and [s.name for s in before.servers][: len(kept)] != kept:
        return "stick tables name servers by id: only the last servers can be removed"
    if sticky and [s.name for s in after.servers][: len(kept)] != kept:
        return "stick tables name servers by id: servers can only be added after the others"
    additions: list[AddedServer] = []
    for position, server in enumerate(after.servers, start=1):
        if server.name in old:
            continue
        arguments = dynamic_arguments(server)
        if isinstance(arguments, str):
            return f"server {server.name}: {arguments}"
        if sticky:
            arguments += ("id", str(position))
        additions.append(
            AddedServer(
                backend=after.name,
                server=server.name,
                arguments=arguments,
                checked="check" in server.check_keywords,
                disabled=server.disabled,
            )
        )
    return ServerEdits(
        added=tuple(additions), removed=tuple((after.name, name) for name in removed)
    )


def _without_servers(view: HaproxyView) -> HaproxyView:
    """``view`` without what adding or removing servers changes: the server lines, and the
    maxconn and descriptors their checks size (the engine lowers maxconn at runtime)."""
    return replace(
        view,
        global_settings=tuple(
            line for line in view.global_settings if not line.startswith("maxconn ")
        ),
        proxies=tuple(replace(proxy, servers=()) for proxy in view.proxies),
        maxconn=0,
    )


def _plain(word: str) -> str | None:
    """``word`` as one CLI argument: unquoted if quoted, None if it cannot be one."""
    quoted = _QUOTED.fullmatch(word)
    if quoted is not None:
        return quoted[1]
    return word if _PLAIN.fullmatch(word) else None


def spliced(text: str, services: Sequence[str], maxconn: int) -> str:
    """The configuration ``text`` with the sections of the changed services replaced, and
    the global ``maxconn``: what rendering the whole new configuration gives, at the cost of
    the services that changed (rendering 10,000 servers costs 0.3-0.6 s: issue 15).

    ``services``: the text of each changed service alone (its whole configuration as
    ``render`` prints it), whose ``listen``/``backend`` sections differ from those in ``text``
    only in their server lines (``server_edits`` said so). Sections of the template are
    separated by one blank line, and a section never holds one.
    """
    for new_alone in services:
        for header in _proxy_headers(new_alone):
            start, end = _section(text, header)
            new_start, new_end = _section(new_alone, header)
            text = text[:start] + new_alone[new_start:new_end] + text[end:]
    head, sep, rest = text.partition("\ndefaults\n")
    head = _MAXCONN.sub(f"\\1maxconn {maxconn}\n", head, count=1)
    return head + sep + rest


_MAXCONN = re.compile(r"(\n    )maxconn \d+\n")
_HEADER = re.compile(r"^(?:listen|backend) \S+$", re.MULTILINE)


def _proxy_headers(text: str) -> list[str]:
    return _HEADER.findall(text)


def _section(text: str, header: str) -> tuple[int, int]:
    """Where the section that starts with ``header`` is in ``text``, its last newline in."""
    start = text.index(f"\n{header}\n") + 1
    end = text.find("\n\n", start)
    return start, len(text) if end == -1 else end + 1


@dataclass(frozen=True, kw_only=True)
class PendingReload:
    """Servers added at runtime since the last reload, which a deferred reload makes ordinary
    servers again (HAProxy 2.6 reuses no idle connection to a server ``add server`` created:
    docs/architecture.md). Times are the caller's clock, in seconds.

    The reload is due ``delay`` seconds after the last runtime change (each one pushes it
    back, so a burst of additions costs one reload), but never later than ``max_delay``
    after the first (a steady stream of changes cannot postpone it for ever)."""

    first: float
    last: float
    delay: float
    max_delay: float

    @classmethod
    def starting(cls, now: float, *, delay: float, max_delay: float) -> PendingReload:
        return cls(first=now, last=now, delay=delay, max_delay=max_delay)

    def changed(self, now: float) -> PendingReload:
        """Another runtime change at ``now``: the reload waits for ``delay`` more seconds."""
        return replace(self, last=now)

    @property
    def due(self) -> float:
        return min(self.last + self.delay, self.first + max(self.max_delay, self.delay))

    def retried(self, now: float) -> PendingReload:
        """The reload failed at ``now``: tried again ``max_delay`` later (or at the next
        change's delay), not on every tick."""
        return replace(self, first=now, last=now + max(self.max_delay, self.delay) - self.delay)
