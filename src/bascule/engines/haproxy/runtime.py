"""HAProxy's runtime API as values: command builders and answer parsers, with no I/O.

Where it sits in the flow of a change: the reconciler decides that a real server's weight or
state changes (``SetWeight``, ``SetState``); the engine turns those actions into the command
strings built here, and ``shell.py`` sends them over the stats socket and hands the raw answers
back to ``check_answer``. In the other direction, the status & stats layer reads HAProxy through
``show stat``, ``show servers state`` (stats socket) and ``show proc`` (master CLI); the parsers
here turn those texts into typed, frozen values. Nothing here touches a socket, a file, a
subprocess or the clock (see STYLE.md, "From h11").

The answers with a module of their own: ``show stat`` (server_stats.py), ``show servers
state`` (server_states.py) and the master's ``show proc`` with a worker's ``show info``
(workers.py); they read an answer's lines and numbers with ``answer_lines`` and ``parse_int``
here. This module keeps the commands, the feedback messages (``check_answer``), ``haproxy -v``
and ``-c`` output, ``show table`` and ``show peers``.

Formats were checked against HAProxy 2.6.12 (Debian 12); the samples the unit tests parse were
captured from it (tests/unit/engines/haproxy/samples/).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from bascule.errors import EngineError

# configuration.txt, 4. "Proxies": proxy and server names may only contain upper and lower case
# letters, digits, '-', '_', '.' and ':'. Checking them here means a command can never smuggle
# a ';' (command separator, management.txt 9.3) or a newline into the CLI.
_NAME = re.compile(r"[A-Za-z0-9_.:-]+")

# management.txt 9.3, "set weight": "the weight ... must be between 0 and 256".
MAX_WEIGHT = 256

# management.txt 9.3: the first command of every line we send. With it, every feedback message
# carries its syslog severity ("[3]: No such server."), so errors are told from informational
# feedback ("[6]: New server registered.") without matching message texts. Valid commands that
# return data ("show stat"...) are never prefixed (configuration.txt, "severity-output").
SEVERITY_NUMBERS = "set severity-output number"

# rfc5424 severities 0 (emerg) .. 3 (err) are failures; 4 (warning) and up are feedback.
_LAST_ERROR_SEVERITY = 3
_SEVERITY_LINE = re.compile(r"^\[(?P<severity>[0-7])\]: (?P<text>.*)$")

# Answers to an unknown command carry severity 6 (info) in 2.6, yet the command did nothing.
_UNKNOWN_COMMAND = "Unknown command"

# Feedback that means failure when severity output is off (plain answers, e.g. from the master
# CLI's "@1 <command>" relay). Taken from HAProxy 2.6's answers to the commands built here.
_PLAIN_ERRORS = (
    _UNKNOWN_COMMAND,
    "No such server.",
    "No such backend.",
    "Require 'backend/server'.",
    "Permission denied",
    "Absolute weight can only be between",
    "Relative weight can only be between",
    "Backend is using a static LB algorithm",
    "'set server <srv> state' expects",
    "'set maxconn server' expects",
    "Value out of range",
    "Integer overflow",
)


class AdminState(enum.Enum):
    """The administrative states ``set server <b>/<s> state`` accepts (management.txt 9.3)."""

    READY = "ready"
    DRAIN = "drain"
    MAINT = "maint"


def _name(kind: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"invalid HAProxy {kind} name {value!r}")
    return value


def _server_ref(backend: str, server: str) -> str:
    return f"{_name('backend', backend)}/{_name('server', server)}"


def set_weight(backend: str, server: str, weight: int) -> str:
    """``set weight <backend>/<server> <weight>``: an absolute weight, 0..256."""
    if not 0 <= weight <= MAX_WEIGHT:
        raise ValueError(f"HAProxy weights are 0..{MAX_WEIGHT}, not {weight}")
    return f"set weight {_server_ref(backend, server)} {weight}"


def set_state(backend: str, server: str, state: AdminState) -> str:
    """``set server <backend>/<server> state ready|drain|maint``."""
    return f"set server {_server_ref(backend, server)} state {state.value}"


def shutdown_sessions(backend: str, server: str) -> str:
    """``shutdown sessions server <backend>/<server>``: close every session on the server."""
    return f"shutdown sessions server {_server_ref(backend, server)}"


def set_maxconn(backend: str, server: str, maxconn: int) -> str:
    """``set maxconn server <backend>/<server> <maxconn>``; 0 means unlimited."""
    if maxconn < 0:
        raise ValueError(f"maxconn must be 0 (unlimited) or more, not {maxconn}")
    return f"set maxconn server {_server_ref(backend, server)} {maxconn}"


def set_global_maxconn(maxconn: int) -> str:
    """``set maxconn global <maxconn>``: the process's connection limit (at most its start's)."""
    if maxconn < 1:
        raise ValueError(f"the global maxconn must be at least 1, not {maxconn}")
    return f"set maxconn global {maxconn}"


def add_server(backend: str, server: str, arguments: Sequence[str]) -> str:
    """``add server <backend>/<server> <address> <keywords...>`` (2.6: a dynamic server)."""
    return " ".join(["add server", _server_ref(backend, server), *arguments])


def del_server(backend: str, server: str) -> str:
    """``del server <backend>/<server>``: refused unless in maintenance and unused."""
    return f"del server {_server_ref(backend, server)}"


def enable_health(backend: str, server: str) -> str:
    """``enable health <backend>/<server>``: a server added at runtime starts unchecked."""
    return f"enable health {_server_ref(backend, server)}"


def command_line(commands: Sequence[str]) -> str:
    """One CLI line carrying ``commands`` in order, severity output first, newline-terminated.

    management.txt 9.3: in non-interactive mode several commands on one line are separated by
    ';', and a ';' or '\\' inside a command must be preceded by a backslash.
    """
    escaped = []
    for command in commands:
        if "\n" in command or "\r" in command or not command.strip():
            raise ValueError(f"not a single CLI command: {command!r}")
        escaped.append(command.replace("\\", "\\\\").replace(";", "\\;"))
    return "; ".join([SEVERITY_NUMBERS, *escaped]) + "\n"


@dataclass(frozen=True, kw_only=True)
class CliMessage:
    """One feedback message of the CLI; ``severity`` is None when severity output was off."""

    severity: int | None
    text: str

    @property
    def is_error(self) -> bool:
        if self.text.startswith(_UNKNOWN_COMMAND):
            return True
        if self.severity is None:
            return self.text.startswith(_PLAIN_ERRORS)
        return self.severity <= _LAST_ERROR_SEVERITY


def parse_messages(answer: str) -> tuple[tuple[CliMessage, ...], str]:
    """Split a raw CLI answer into its feedback messages and the remaining data text.

    A message is a line prefixed with ``[<severity>]: ``, or, when no line carries a prefix, a
    line that starts one of the known plain error texts. Continuation lines of a message (the
    suggestions listed after "Unknown command") are dropped from the data.
    """
    messages: list[CliMessage] = []
    data: list[str] = []
    prefixed = any(_SEVERITY_LINE.match(line) for line in answer.splitlines())
    in_message = False
    for line in answer.splitlines():
        match = _SEVERITY_LINE.match(line)
        if match:
            messages.append(CliMessage(severity=int(match["severity"]), text=match["text"]))
            in_message = True
        elif not prefixed and line.startswith(_PLAIN_ERRORS):
            messages.append(CliMessage(severity=None, text=line))
            in_message = True
        elif in_message and line.startswith("  "):
            continue  # the indented suggestions after "Unknown command"
        else:
            in_message = False
            data.append(line)
    return tuple(messages), "\n".join(data).strip("\n")


def check_answer(answer: str) -> str:
    """Raise EngineError with HAProxy's message if ``answer`` reports an error.

    Returns the answer without its feedback messages: the data of a ``show`` command, or ""
    for a command that succeeded silently (HAProxy answers setters with an empty line).
    """
    messages, data = parse_messages(answer)
    errors = [m.text for m in messages if m.is_error]
    if errors:
        raise EngineError("HAProxy runtime API: " + "; ".join(errors))
    return data


def parse_int(value: str | None) -> int | None:
    if value is None or value == "" or value == "-1":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise EngineError(f"HAProxy answered {value!r} where a number was expected") from exc


def answer_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` that are not blank, one at a time: 10,000 servers' answers are
    megabytes, and their lines held all at once were megabytes of small blocks more at every
    sample (issue 15). (Not ``io.StringIO``: it copies the text, four bytes a character.)"""
    start, end = 0, len(text)
    while start < end:
        stop = text.find("\n", start)
        if stop < 0:
            stop = end
        line = text[start:stop].rstrip("\r")
        if line.strip():
            yield line
        start = stop + 1


# --- haproxy -v, haproxy -c ---------------------------------------------------------------------

_VERSION = re.compile(r"^HA-?Proxy version (?P<version>\S+)", re.MULTILINE)
_LOG_PREFIX = re.compile(r"^\[(?P<level>[A-Z]+)\]\s+\(\d+\) : ")


def parse_version(text: str) -> str:
    """``HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/`` -> the version."""
    match = _VERSION.search(text)
    if not match:
        raise EngineError(f"unexpected 'haproxy -v' output: {text[:200]!r}")
    return match["version"]


def alert_lines(output: Iterable[str]) -> list[str]:
    """The ALERT lines of HAProxy's output (checker or master log), without the pid prefix.

    ``[ALERT]    (1234) : config : parsing [x.cfg:3] : unknown keyword 'bnd'`` becomes
    ``config : parsing [x.cfg:3] : unknown keyword 'bnd'``.
    """
    alerts: list[str] = []
    for line in output:
        match = _LOG_PREFIX.match(line)
        if match and match["level"] == "ALERT":
            alerts.append(line[match.end() :].strip())
    return alerts


# --- show table / clear table (management.txt 9.3) ----------------------------------------------


def show_table(table: str) -> str:
    """``show table <name>``: the header line and one line per entry."""
    return f"show table {_name('table', table)}"


def clear_table(table: str) -> str:
    """``clear table <name>``: remove every entry not in use by a connection."""
    return f"clear table {_name('table', table)}"


@dataclass(frozen=True, kw_only=True)
class StickEntry:
    """One stick-table entry: its key as HAProxy prints it, unescaped (an address, a string,
    or hex for binary keys), milliseconds before it expires, and the server it sticks to
    (``server_key`` is the server's name: HAProxy 2.6's default "srvkey name")."""

    key: str
    expires_ms: int
    server_id: int | None
    server_key: str | None
    # the stored counters as HAProxy names them ("conn_cur", "http_req_rate(1000)"...)
    data: Mapping[str, str] = field(default_factory=dict, compare=False)


# "0x55d1c1a8e2a0: key=198.18.0.10 use=0 exp=3599104 server_id=1 server_key=198.18.0.11:80".
# A string key's spaces are backslash-escaped ("key=tenant\ 1"), so the key ends at the
# first " use=".
_ESCAPE = re.compile(r"\\(.)")
_TABLE_ENTRY = re.compile(r"^0x[0-9a-f]+: key=(?P<key>.*?) use=\d+ exp=(?P<exp>\d+)(?P<data>.*)$")


def parse_show_table(text: str) -> list[StickEntry]:
    """The entries of a ``show table <name>`` answer (the ``# table:`` header is skipped)."""
    entries: list[StickEntry] = []
    for line in text.splitlines():
        match = _TABLE_ENTRY.match(line)
        if not match:
            continue
        data = dict(word.split("=", 1) for word in match["data"].split() if "=" in word)
        entries.append(
            StickEntry(
                key=_ESCAPE.sub(r"\1", match["key"]),
                expires_ms=int(match["exp"]),
                server_id=parse_int(data.get("server_id")),
                server_key=data.get("server_key") or data.get("server_name"),
                data=data,
            )
        )
    return entries


# --- show peers (management.txt 9.3) --------------------------------------------------------------

SHOW_PEERS = "show peers"

# HAProxy 2.6 src/peers.c: PEERS_F_RESYNC_LOCAL (0x1) "learned from the local (old) process"
# and PEERS_F_RESYNC_REMOTE (0x2) "learned from a remote peer"; a section that has neither is
# still in its initial resync (up to 5 s per step, "resync_timeout") and would not hand its
# tables to the next worker on a reload.
_PEERS_RESYNCED = 0x3
_PEERS_SECTION = re.compile(
    r"^0x[0-9a-f]+: \[[^\]]*\] id=(?P<id>\S+) .*\bflags=0x(?P<flags>[0-9a-f]+)"
)


def peers_resynced(text: str, section: str) -> bool | None:
    """Whether the ``section`` of a ``show peers`` answer finished its initial resync (None:
    no such section)."""
    for line in text.splitlines():
        match = _PEERS_SECTION.match(line)
        if match and match["id"] == section:
            return int(match["flags"], 16) & _PEERS_RESYNCED == _PEERS_RESYNCED
    return None


# peers.c, peers_dump_peer: "  0x...: id=<name>(remote,active) addr=<ip:port> last_status=ESTA"
_REMOTE_PEER = re.compile(
    r"^\s+0x[0-9a-f]+: id=(?P<id>[^(\s]+)\(remote,\w+\).*?\blast_status=(?P<status>\w+)"
)


def remote_peers(text: str) -> dict[str, str]:
    """Each remote peer of a ``show peers`` answer and its last status (``ESTA``: the session
    is established and the stick tables are exchanged; ``CONN``, ``HSHK``, ``NONE``... not)."""
    return {
        match["id"]: match["status"]
        for line in text.splitlines()
        if (match := _REMOTE_PEER.match(line))
    }
