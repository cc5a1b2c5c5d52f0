"""HAProxy's process-wide settings: the ``global`` and ``defaults`` sections of the file.

Where it sits: under the view (view.py), which prints these lines first: the stats socket and
its seamless reload, maxconn (sized by descriptors.py), threads and their CPUs, the server
state file, tuning (3.2), and the defaults every section inherits (timeouts, retries,
redispatch, the server state loaded at a reload). The settings come in as the view's
``HaproxyGlobals``. Pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bascule.engines.haproxy.quoting import quote

if TYPE_CHECKING:  # the view's input; view.py imports this module
    from bascule.engines.haproxy.view import HaproxyGlobals

# Global section, 3.2 "Performance tuning". tune.bufsize is the default, spelled out because
# two features depend on it: retry-on buffers the whole request (requests larger than one
# buffer are never retried) and http-check expect rstring only sees the first buffer of the
# body.
TUNE: tuple[tuple[str, str], ...] = (
    ("tune.bufsize", "16384"),
    ("tune.ssl.default-dh-param", "2048"),
)

# 3.1 "cpu-map": HAProxy 2.6 names CPUs 0..LONGBITS-1 (63 on 64-bit machines).
CPU_MAP_LIMIT = 64

# Defaults section (4.2 "timeout ..."). http-request bounds slowloris; tunnel covers
# WebSocket and CONNECT once upgraded; client-fin/server-fin stop half-closed connections
# from lingering for the full client/server timeout.
DEFAULT_TIMEOUTS: tuple[tuple[str, str], ...] = (
    ("connect", "5s"),
    ("client", "60s"),
    ("server", "60s"),
    ("http-request", "10s"),
    ("http-keep-alive", "10s"),
    ("queue", "30s"),
    ("tunnel", "1h"),
    ("client-fin", "30s"),
    ("server-fin", "30s"),
)

# 4.2 "retries" and "option redispatch <interval>": retry a failed connection 3 times and
# redispatch to another server on every retry (interval 1), so a just-dead server costs the
# client a delay, not an error.
RETRIES = 3
REDISPATCH_INTERVAL = 1


def global_settings(globals_: HaproxyGlobals, maxconn: int) -> tuple[str, ...]:
    # Section 3.1: "expose-fd listeners" lets a new process take over the listening sockets
    # on reload (seamless reload); "level admin" is needed for weights and states.
    lines = [
        f"stats socket {quote(globals_.stats_socket)} mode 600 level admin expose-fd listeners",
        f"maxconn {maxconn}",
        f"nbthread {globals_.nbthread}",
        f"hard-stop-after {globals_.hard_stop_after_s}s",
    ]
    lines += _cpu_map(globals_)
    if globals_.server_state_file is not None:
        lines.append(f"server-state-file {quote(globals_.server_state_file)}")
    lines += [f"{name} {value}" for name, value in TUNE]
    return tuple(lines)


def _cpu_map(globals_: HaproxyGlobals) -> list[str]:
    # Section 3.1 "cpu-map": "auto:1/1-N <cpus>" binds thread 1 to the first CPU, thread 2 to
    # the second... Without it the kernel moves the threads around and, on a small machine
    # shared with other processes, often runs both on one CPU: bench/l7.py measured ~30% more
    # requests per second with the binding on 2 CPUs (docs/performance.md). One thread keeps
    # the process's own affinity; CPUs past the 2.6 limit cannot be named.
    cpus = globals_.cpus
    if len(cpus) < 2 or max(cpus) >= CPU_MAP_LIMIT:
        return []
    return [f"cpu-map auto:1/1-{len(cpus)} {' '.join(str(cpu) for cpu in cpus)}"]


def defaults(globals_: HaproxyGlobals) -> tuple[str, ...]:
    lines = ["mode tcp"]
    lines += [f"timeout {name} {value}" for name, value in DEFAULT_TIMEOUTS]
    lines += [f"retries {RETRIES}", f"option redispatch {REDISPATCH_INTERVAL}"]
    if globals_.server_state_file is not None:
        lines.append("load-server-state-from-file global")
    return tuple(lines)
