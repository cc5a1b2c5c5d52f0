"""Request logs as HAProxy log targets and proxy options (pure; part of the view).

HAProxy formats and sends the lines itself; nothing on the packet path waits on Python (8.1
"Log levels", 8.2.3 "HTTP log format", 8.2.2 "TCP log format"). Targets, in the ``global``
section (3.1 "log"):

- the daemon's pipe (``HaproxyGlobals.request_log_pipe``): the master is started with its
  write end as descriptor ``REQUEST_LOG_FD`` and keeps it across reloads (``log fd@3``: one
  ``writev`` per line, without blocking, so a slow or absent reader loses lines, never
  requests; daemon/request_logs.py reads it). Not a ``ring`` to the daemon: in 2.6 a ring
  costs more per line than the pipe (its lock) and, while its unix socket server is absent,
  its forwarder reconnects without pause (docs/performance.md, "the pipe, or a ring?");
- ``logging.syslog``: UDP straight from HAProxy, or TCP through a ``ring`` (3.9 "Rings"),
  whose writer drops lines when the server is slow rather than blocking.

Each l7 service with ``request_log`` gets ``log global`` and ``option httplog`` (``tcplog``
for TCP services): the formats HAProxy users know.
"""

from __future__ import annotations

from dataclasses import dataclass

from bascule.engines.haproxy.quoting import token
from bascule.model import Configuration, VirtualService
from bascule.model.logging import SyslogProtocol
from bascule.net.addresses import host_port

# 3.1 "log ... len": lines up to this long (the default 1024 would cut long URLs).
LOG_LENGTH = 8192
#: The descriptor the master inherits the daemon's request log pipe on (shell.py).
REQUEST_LOG_FD = 3
#: Lines to the pipe are cut at PIPE_BUF: a write that long is atomic (pipe(7)), so two
#: threads' lines never interleave, and one never lands half-written in a full pipe.
PIPE_LINE = 4096
FACILITY = "local0"
#: The ring that carries lines to a TCP syslog server.
SYSLOG_RING = "bascule-syslog"
RING_SIZE = 1048576


@dataclass(frozen=True, kw_only=True)
class LogView:
    """The ``global`` log lines and the rings; ``enabled``: some target exists."""

    global_lines: tuple[str, ...] = ()
    rings: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.global_lines)


def log_view(config: Configuration, pipe: bool) -> LogView:
    """``pipe``: the master holds the daemon's request log pipe (``REQUEST_LOG_FD``)."""
    lines: list[str] = []
    rings: list[tuple[str, tuple[str, ...]]] = []
    if pipe:
        # "format raw": the line only; the daemon keeps no syslog header (3.1 "log")
        lines.append(f"log fd@{REQUEST_LOG_FD} len {PIPE_LINE} format raw {FACILITY} info")
    syslog = config.logging.syslog if config.logging is not None else None
    if syslog is not None:
        target = token(host_port(syslog.address, syslog.port))
        if syslog.protocol is SyslogProtocol.udp:
            lines.append(f"log {target} len {LOG_LENGTH} format rfc5424 {FACILITY} info")
        else:
            rings.append(
                (
                    SYSLOG_RING,
                    (
                        "format rfc5424",
                        f"maxlen {LOG_LENGTH}",
                        f"size {RING_SIZE}",
                        "timeout connect 5s",
                        "timeout server 10s",
                        f"server syslog {target}",
                    ),
                )
            )
            lines.append(f"log ring@{SYSLOG_RING} len {LOG_LENGTH} {FACILITY} info")
    return LogView(global_lines=tuple(lines), rings=tuple(rings))


def proxy_lines(vs: VirtualService, http: bool, logs: LogView) -> tuple[str, ...]:
    """A service's own log settings (4.2 "log global", "option httplog", "option tcplog")."""
    if not (vs.logs_requests and logs.enabled):
        return ()
    return ("log global", "option httplog" if http else "option tcplog")
