"""How many file descriptors HAProxy needs for a configuration, and the maxconn that fits.

HAProxy 2.6 adds up, at start, every descriptor its configuration holds whatever the traffic
(``global.maxsock``), then two per connection (``compute_ideal_maxsock`` in haproxy.c), and
raises its RLIMIT_NOFILE to that sum; with "strict-limits" (the 2.6 default, 3.1) it refuses
to start when the system does not allow it: "Cannot raise FD limit to N, limit is M". A fixed
margin is wrong both ways: 1,000 services with 10 checked servers each hold 11,000 descriptors
before the first connection. So the view counts what HAProxy counts and gives HAProxy the
largest maxconn that fits in the descriptors it may open (``fit``); a configuration that leaves
room for fewer than ``MIN_MAXCONN`` connections is refused before HAProxy is touched.

What HAProxy 2.6 counts (its source; ``show info``'s Maxsock matches ``maxsock`` here, which
tests/integration/test_haproxy_descriptors.py checks on the real binary):

- 10 descriptors reserved at start (haproxy.c: ``global.maxsock = 10``);
- one per listener: each ``bind`` address, one per port of a port range (cfgparse-listen.c),
  the ``peers`` section's bind (cfgparse.c) and the stats socket (cli.c);
- the stats socket's connections, 10 unless "stats maxconn" says otherwise (cli.c, counted
  whole by haproxy.c);
- master-worker mode (``-W -S``, shell.py): the master CLI's listener and its 10 connections
  (cli.c ``mworker_cli_proxy_new_listener``), and the worker's socket pair to the master;
- the ``peers`` section's frontend: 3 connections per peer (peers.c ``peers_init_sync``; the
  local peer counts once "localpeer" names it, which Bascule always does);
- one per server with a health check (``check``), one per ``port`` (check port) and the
  same for agent checks (check.c; Bascule's agents are polled by the daemon, not HAProxy);
- per thread: its poller (epoll) and its wake-up pipe, three (haproxy.c);
- no splice pipes (no ``option splice-*``: ``compute_ideal_maxpipes`` gives 0) and no SSL
  async engines: nothing per connection but its two sockets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# haproxy.c, init(): "global.maxsock = 10; /* reserve 10 fds ; will be incremented by socket
# eaters */"
RESERVED = 10
# cli.c: the stats socket frontend's "maxconn = 10; /* default to 10 concurrent connections */"
STATS_CONNECTIONS = 10
# cli.c, master-worker: the master CLI's listener, its 10 connections, and one socket pair
# between the master and the worker
MASTER_CLI = 1 + 10 + 1
# haproxy.c: "one epoll_fd/kqueue_fd per thread" and "one wake-up pipe (2 fd) per thread"
PER_THREAD = 3
# "each connection needs two sockets": the client's and the server's
PER_CONNECTION = 2
# Fewer connections than this and the configuration is refused: HAProxy's own floor for a
# computed maxconn (DEFAULT_MAXCONN, defaults.h).
MIN_MAXCONN = 100
# peers.c: "peers_fe->maxconn += 3" for each peer of the section
PER_PEER = 3
# The server keywords that each make HAProxy count one descriptor (check.c).
CHECK_KEYWORDS = frozenset({"check", "agent-check"})
CHECK_PORT_KEYWORDS = frozenset({"port", "agent-port"})


class DescriptorShortage(ValueError):
    """The configuration's own descriptors leave too few for connections."""


@dataclass(frozen=True, kw_only=True)
class Descriptors:
    """The descriptors a configuration holds whatever the traffic, by kind."""

    listeners: int
    checks: int
    nbthread: int
    peers: int = 0
    stats_sockets: int = 1

    @property
    def fixed(self) -> int:
        """HAProxy's maxsock before connections: everything but two per connection."""
        return (
            RESERVED
            + self.stats_sockets * (1 + STATS_CONNECTIONS)
            + MASTER_CLI
            + self.listeners
            + self.checks
            + PER_PEER * self.peers
            + PER_THREAD * self.nbthread
        )

    def maxsock(self, maxconn: int) -> int:
        """What HAProxy raises its RLIMIT_NOFILE to for ``maxconn`` (``show info`` Maxsock)."""
        return self.fixed + PER_CONNECTION * maxconn

    def fit(self, limit: int, ceiling: int | None = None) -> int:
        """The largest maxconn (at most ``ceiling``) whose maxsock is within ``limit``;
        DescriptorShortage when that is fewer than MIN_MAXCONN connections."""
        room = (limit - self.fixed) // PER_CONNECTION
        if room < MIN_MAXCONN:
            threads = PER_THREAD * self.nbthread
            sockets = self.fixed - self.listeners - self.checks - threads
            raise DescriptorShortage(
                f"HAProxy may open {limit} file descriptors and this configuration holds "
                f"{self.fixed} of them before any connection ({self.listeners} listeners, "
                f"{self.checks} health checks, {threads} for {self.nbthread} threads, "
                f"{sockets} for its own sockets), which leaves room for {max(room, 0)} "
                f"connections; at least "
                f"{MIN_MAXCONN} are needed: fewer services, ports or checked servers, or a "
                f"higher descriptor limit for the daemon (LimitNOFILE in its systemd unit)"
            )
        return room if ceiling is None else min(room, ceiling)


def listeners_of(bind: str) -> int:
    """How many listeners one ``bind`` line's address makes: one per port of its range.

    ``bind`` is the line after the keyword: ``198.18.0.1:8000-8010 ssl crt-list ...``,
    ``[::]:80 v6only``, ``'unix@/run/peers.sock' mode 600``, ``'198.18.0.1:7000' ssl ...``.
    """
    address = bind.split(" ", 1)[0].strip("'")
    if address.startswith(("unix@", "/", "abns@", "fd@", "sockpair@")):
        return 1
    ports = address.rpartition(":")[2]
    first, _, last = ports.partition("-")
    if not last:
        return 1
    return int(last) - int(first) + 1


def check_descriptors(keywords: Sequence[str]) -> int:
    """How many descriptors a server line's keywords make HAProxy count for checks."""
    return sum(word in CHECK_KEYWORDS or word in CHECK_PORT_KEYWORDS for word in keywords)


def count(
    *, binds: Iterable[str], servers: Iterable[Sequence[str]], peers: int, nbthread: int
) -> Descriptors:
    """The descriptors of a configuration from its bind addresses (every section's, the
    ``peers`` one included), its servers' keywords and the peers of its ``peers`` section."""
    return Descriptors(
        listeners=sum(listeners_of(bind) for bind in binds),
        checks=sum(check_descriptors(keywords) for keywords in servers),
        peers=peers,
        nbthread=nbthread,
    )
