"""HAProxy's runtime API as values: command builders and answer parsers, with no I/O.

Where it sits in the flow of a change: the reconciler decides that a real server's weight or
state changes (``SetWeight``, ``SetState``); the engine turns those actions into the command
strings built here, and ``shell.py`` sends them over the stats socket and hands the raw answers
back to ``check_answer``. In the other direction, the status & stats layer reads HAProxy through
``show stat``, ``show servers state`` (stats socket) and ``show proc`` (master CLI); the parsers
here turn those texts into typed, frozen values. Nothing here touches a socket, a file, a
subprocess or the clock (see STYLE.md, "From h11").

Formats were checked against HAProxy 2.6.12 (Debian 12); the samples the unit tests parse were
captured from it (tests/unit/engines/haproxy/samples/).
"""

from __future__ import annotations

import csv
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


# --- show stat (management.txt 9.1, "CSV format") ---------------------------------------------


class StatKind(enum.Enum):
    """The ``type`` column of ``show stat``: what a row describes."""

    FRONTEND = 0
    BACKEND = 1
    SERVER = 2
    LISTENER = 3


@dataclass(frozen=True, kw_only=True)
class ServerStat:
    """One row of ``show stat``: a frontend, a backend, a server or a listener.

    ``status`` is HAProxy's own text: "UP", "DOWN", "UP 1/3" (up, failing checks), "DOWN 1/2"
    (down, passing checks), "NOLB", "DRAIN", "MAINT", "MAINT (via b/s)", "no check", "OPEN"...
    ``check_status`` drops the "* " HAProxy puts before it while a check runs
    (``check_running`` says so). Counters HAProxy leaves empty for a row's kind read as 0;
    check details are None where there is no check.
    """

    proxy: str
    server: str
    kind: StatKind
    status: str
    weight: int | None
    scur: int
    smax: int
    stot: int
    bin: int
    bout: int
    rate: int
    check_status: str | None
    check_running: bool
    check_code: int | None
    check_duration: int | None
    last_chk: str | None
    lastchg: int | None
    chkfail: int | None
    downtime: int | None
    address: str | None
    # HTTP requests: ``req_tot`` where HAProxy counts it (frontends and backends); a server row
    # has no req_tot in 2.6 (management.txt 9.1, field 48), so there it is the sum of the HTTP
    # responses it gave (hrsp_1xx..hrsp_other, fields 39-44). 0 for TCP proxies.
    requests: int = 0
    # connection attempts to the server that failed: the requests that gave up (field 14
    # "econ") and the retries before them (field 16 "wretr"); each attempt counts in stot
    connection_errors: int = 0
    # a proxy's cache (fields 84-85): requests looked up in it, and answered from it
    cache_lookups: int = 0
    cache_hits: int = 0


_RESPONSE_COLUMNS = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")


# Every column of ``show stat`` that ``parse_show_stat`` reads.
_STAT_COLUMNS = frozenset(
    {
        "pxname",
        "svname",
        "type",
        "status",
        "weight",
        "scur",
        "smax",
        "stot",
        "bin",
        "bout",
        "rate",
        "check_status",
        "check_code",
        "check_duration",
        "last_chk",
        "lastchg",
        "chkfail",
        "downtime",
        "addr",
        "req_tot",
        "econ",
        "wretr",
        "cache_lookups",
        "cache_hits",
        *_RESPONSE_COLUMNS,
    }
)


def _requests(row: dict[str, str]) -> int:
    total = _int(row.get("req_tot"))
    if total is not None:
        return total
    return sum(_count(row.get(column)) for column in _RESPONSE_COLUMNS)


def _int(value: str | None) -> int | None:
    if value is None or value == "" or value == "-1":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise EngineError(f"HAProxy answered {value!r} where a number was expected") from exc


def _count(value: str | None) -> int:
    number = _int(value)
    return 0 if number is None else number


def _text(value: str | None) -> str | None:
    return value or None


def parse_show_stat(text: str) -> list[ServerStat]:
    """Parse the CSV answer of ``show stat`` by its header line (never by position)."""
    return list(iter_show_stat(text))


def _lines(text: str) -> Iterator[str]:
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


def iter_show_stat(text: str) -> Iterator[ServerStat]:
    """``parse_show_stat``'s rows one at a time (EngineError as soon as the answer is not
    ``show stat``'s, at the first row asked for)."""
    lines = _lines(text)
    first = next(lines, "")
    if not first.startswith("# "):
        raise EngineError(f"unexpected 'show stat' answer: {text[:200]!r}")
    header = first[2:].split(",")
    required = {"pxname", "svname", "status", "type", "scur", "stot", "bin", "bout"}
    if missing := required - set(header):
        raise EngineError(f"'show stat' lacks the columns {sorted(missing)}")
    # Only the columns read below, by position: a dict of HAProxy's ~90 columns per row was
    # most of the cost of 10,000 servers' rows, read at every status (issue 15).
    wanted = [(name, index) for index, name in enumerate(header) if name in _STAT_COLUMNS]
    for values in csv.reader(lines):
        width = len(values)
        row = {name: values[index] for name, index in wanted if index < width}
        kind_number = _int(row.get("type"))
        try:
            kind = StatKind(kind_number)
        except ValueError as exc:
            raise EngineError(f"unknown 'show stat' row type {row.get('type')!r}") from exc
        check_status = row.get("check_status") or ""
        yield ServerStat(
            proxy=row["pxname"],
            server=row["svname"],
            kind=kind,
            status=row["status"],
            weight=_int(row.get("weight")),
            scur=_count(row.get("scur")),
            smax=_count(row.get("smax")),
            stot=_count(row.get("stot")),
            bin=_count(row.get("bin")),
            bout=_count(row.get("bout")),
            rate=_count(row.get("rate")),
            check_status=check_status.removeprefix("* ") or None,
            check_running=check_status.startswith("* "),
            check_code=_int(row.get("check_code")),
            check_duration=_int(row.get("check_duration")),
            last_chk=_text(row.get("last_chk")),
            lastchg=_int(row.get("lastchg")),
            chkfail=_int(row.get("chkfail")),
            downtime=_int(row.get("downtime")),
            address=_text(row.get("addr")),
            requests=_requests(row),
            connection_errors=_count(row.get("econ")) + _count(row.get("wretr")),
            cache_lookups=_count(row.get("cache_lookups")),
            cache_hits=_count(row.get("cache_hits")),
        )


# --- show servers state (management.txt 9.3, "show servers state") --------------------------


class OperationalState(enum.Enum):
    """``srv_op_state``: what health checks and the admin state make of a server."""

    STOPPED = 0  # down
    STARTING = 1  # up, warming up (slowstart)
    RUNNING = 2  # up
    STOPPING = 3  # up but soft-stopping (e.g. disable-on-404)


class AdminFlags(enum.Flag):
    """``srv_admin_state``, a mask: why a server is in maintenance or drained."""

    FMAINT = 0x01  # forced into maintenance (set server ... state maint)
    IMAINT = 0x02  # inherited maintenance from a tracked server
    CMAINT = 0x04  # maintenance from the configuration ("disabled")
    FDRAIN = 0x08  # forced into drain (set server ... state drain)
    IDRAIN = 0x10  # inherited drain from a tracked server
    RMAINT = 0x20  # maintenance after an address resolution failure
    HMAINT = 0x40  # FQDN set from the stats socket


_MAINT = AdminFlags.FMAINT | AdminFlags.IMAINT | AdminFlags.CMAINT | AdminFlags.RMAINT
_DRAIN = AdminFlags.FDRAIN | AdminFlags.IDRAIN


@dataclass(frozen=True, kw_only=True)
class ServerRuntimeState:
    """One server of ``show servers state`` (format version 1)."""

    backend_id: int
    backend: str
    server_id: int
    server: str
    address: str
    port: int | None
    operational_state: OperationalState
    admin: AdminFlags
    uweight: int
    iweight: int
    seconds_since_change: int

    @property
    def maint(self) -> bool:
        """In maintenance, whether forced, inherited, configured or after a DNS failure."""
        return bool(self.admin & _MAINT)

    @property
    def drain(self) -> bool:
        """Drained (forced or inherited) and not in maintenance."""
        return bool(self.admin & _DRAIN) and not self.maint

    @property
    def up(self) -> bool:
        return self.operational_state is not OperationalState.STOPPED


SERVERS_STATE_VERSION = 1


def parse_servers_state(text: str) -> list[ServerRuntimeState]:
    """Parse ``show servers state``: a version line, a '#' header line, then one row per server."""
    return list(iter_servers_state(text))


def iter_servers_state(text: str) -> Iterator[ServerRuntimeState]:
    """``parse_servers_state``'s rows one at a time (EngineError as soon as the answer is
    not ``show servers state``'s, at the first row asked for)."""
    lines = _lines(text)
    version = next(lines, None)
    if version is None:
        raise EngineError("empty 'show servers state' answer")
    if version.strip() != str(SERVERS_STATE_VERSION):
        raise EngineError(f"unsupported 'show servers state' format version {version!r}")
    header_line = next(lines, "")
    if not header_line.startswith("# "):
        raise EngineError("'show servers state' answer has no header line")
    header = header_line[2:].split()
    try:
        columns = [header.index(name) for name in _SERVERS_STATE_COLUMNS]
    except ValueError as exc:
        raise EngineError(f"'show servers state' has no column {exc}") from None
    port_column = header.index("srv_port") if "srv_port" in header else None
    # 10,000 rows at every plan (issue 15): the columns by position, the enums by value
    operational = {str(state.value): state for state in OperationalState}
    admin: dict[str, AdminFlags] = {}
    for line in lines:
        if line.startswith("#"):
            continue  # "each line starting by a sharp ('#') is considered as a comment"
        fields = line.split()
        try:
            be_id, be_name, srv_id, srv_name, addr, op, adm, uweight, iweight, since = (
                fields[column] for column in columns
            )
            flags = admin.get(adm)
            if flags is None:
                flags = admin[adm] = AdminFlags(int(adm))
            state = ServerRuntimeState(
                backend_id=int(be_id),
                backend=be_name,
                server_id=int(srv_id),
                server=srv_name,
                address=addr,
                port=(
                    _int(fields[port_column])
                    if port_column is not None and port_column < len(fields)
                    else None
                )
                or None,
                operational_state=operational.get(op) or OperationalState(int(op)),
                admin=flags,
                uweight=int(uweight),
                iweight=int(iweight),
                seconds_since_change=int(since),
            )
        except (IndexError, ValueError) as exc:
            raise EngineError(f"unexpected 'show servers state' row {line!r}") from exc
        yield state


# The columns of a ``show servers state`` row that ``parse_servers_state`` reads, in order.
_SERVERS_STATE_COLUMNS = (
    "be_id",
    "be_name",
    "srv_id",
    "srv_name",
    "srv_addr",
    "srv_op_state",
    "srv_admin_state",
    "srv_uweight",
    "srv_iweight",
    "srv_time_since_last_change",
)


# --- master CLI: show proc (management.txt 9.4.1) ---------------------------------------------


class ProcessRole(enum.Enum):
    """The section of ``show proc`` a process is listed in."""

    MASTER = "master"
    WORKER = "worker"  # serves the current configuration
    OLD_WORKER = "old worker"  # finishing its connections after a reload
    PROGRAM = "program"  # a "program" section's process


@dataclass(frozen=True, kw_only=True)
class ProcessEntry:
    """One row of ``show proc``.

    ``reloads`` counts, for the master, the reloads it went through; for a worker, the reloads
    it survived (a freshly forked worker shows 0). ``failed_reloads`` is the master's only.
    """

    pid: int
    role: ProcessRole
    reloads: int
    failed_reloads: int | None
    uptime_seconds: int
    version: str


@dataclass(frozen=True, kw_only=True)
class ProcessTable:
    """The whole ``show proc`` answer."""

    master: ProcessEntry
    workers: tuple[ProcessEntry, ...]
    old_workers: tuple[ProcessEntry, ...]
    programs: tuple[ProcessEntry, ...]

    @property
    def worker_pids(self) -> list[int]:
        return [worker.pid for worker in self.workers]


_SECTIONS = {
    "# workers": ProcessRole.WORKER,
    "# old workers": ProcessRole.OLD_WORKER,
    "# programs": ProcessRole.PROGRAM,
}
_PROC_ROW = re.compile(
    r"^(?P<pid>\d+)\s+(?P<type>\S+)\s+(?P<reloads>\d+)(?:\s+\[failed: (?P<failed>\d+)\])?"
    r"\s+(?P<uptime>\S+)\s+(?P<version>\S+)\s*$"
)
SHOW_INFO = "show info"


@dataclass(frozen=True)
class ProcessLimits:
    """``show info``'s limits of the worker: connections (``Maxconn``), descriptors
    (``Maxsock``, what HAProxy counted it needs) and its RLIMIT_NOFILE (``Ulimit-n``)."""

    maxconn: int
    maxsock: int
    ulimit_n: int


def parse_limits(text: str) -> ProcessLimits:
    """The limits of a ``show info`` answer ("Name: value" lines, management.txt 9.3)."""
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    try:
        return ProcessLimits(
            maxconn=int(fields["Maxconn"]),
            maxsock=int(fields["Maxsock"]),
            ulimit_n=int(fields["Ulimit-n"]),
        )
    except (KeyError, ValueError) as exc:
        raise EngineError(f"unexpected 'show info' answer: no {exc}") from None


_UPTIME = re.compile(r"^(?P<d>\d+)d(?P<h>\d+)h(?P<m>\d+)m(?P<s>\d+)s$")


def parse_uptime(text: str) -> int:
    """``0d00h02m07s`` -> 127 (seconds)."""
    match = _UPTIME.match(text)
    if not match:
        raise EngineError(f"unexpected uptime {text!r} in 'show proc'")
    return ((int(match["d"]) * 24 + int(match["h"])) * 60 + int(match["m"])) * 60 + int(match["s"])


def parse_show_proc(text: str) -> ProcessTable:
    """Parse the master CLI's ``show proc`` table.

    The master may answer nothing while it re-executes itself during a reload; that is an
    EngineError here and a reason to ask again for the caller.
    """
    role = ProcessRole.MASTER
    entries: dict[ProcessRole, list[ProcessEntry]] = {r: [] for r in ProcessRole}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#<PID>"):
            continue
        if stripped.startswith("#"):
            if stripped not in _SECTIONS:
                raise EngineError(f"unknown 'show proc' section {stripped!r}")
            role = _SECTIONS[stripped]
            continue
        match = _PROC_ROW.match(stripped)
        if not match:
            raise EngineError(f"unexpected 'show proc' row {stripped!r}")
        entries[role].append(
            ProcessEntry(
                pid=int(match["pid"]),
                role=role,
                reloads=int(match["reloads"]),
                failed_reloads=int(match["failed"]) if match["failed"] is not None else None,
                uptime_seconds=parse_uptime(match["uptime"]),
                version=match["version"],
            )
        )
    masters = entries[ProcessRole.MASTER]
    if len(masters) != 1:
        raise EngineError(f"'show proc' lists {len(masters)} masters: {text[:200]!r}")
    return ProcessTable(
        master=masters[0],
        workers=tuple(entries[ProcessRole.WORKER]),
        old_workers=tuple(entries[ProcessRole.OLD_WORKER]),
        programs=tuple(entries[ProcessRole.PROGRAM]),
    )


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
                server_id=_int(data.get("server_id")),
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
