"""``show stat`` as values: each server's health, check and counters (management.txt 9.1).

Where it sits: the engine's observation (observation.py) reads HAProxy's health and
counters through it; the shell sends ``show stat`` and hands the CSV answer here, read by its
header line, a row at a time (10,000 servers' rows at every full observe: issue 15). Pure.
"""

from __future__ import annotations

import csv
import enum
from collections.abc import Iterator
from dataclasses import dataclass

from bascule.engines.haproxy.runtime import answer_lines, parse_int
from bascule.errors import EngineError


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
    total = parse_int(row.get("req_tot"))
    if total is not None:
        return total
    return sum(_count(row.get(column)) for column in _RESPONSE_COLUMNS)


def _count(value: str | None) -> int:
    number = parse_int(value)
    return 0 if number is None else number


def _text(value: str | None) -> str | None:
    return value or None


def parse_show_stat(text: str) -> list[ServerStat]:
    """Parse the CSV answer of ``show stat`` by its header line (never by position)."""
    return list(iter_show_stat(text))


def iter_show_stat(text: str) -> Iterator[ServerStat]:
    """``parse_show_stat``'s rows one at a time (EngineError as soon as the answer is not
    ``show stat``'s, at the first row asked for)."""
    lines = answer_lines(text)
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
        kind_number = parse_int(row.get("type"))
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
            weight=parse_int(row.get("weight")),
            scur=_count(row.get("scur")),
            smax=_count(row.get("smax")),
            stot=_count(row.get("stot")),
            bin=_count(row.get("bin")),
            bout=_count(row.get("bout")),
            rate=_count(row.get("rate")),
            check_status=check_status.removeprefix("* ") or None,
            check_running=check_status.startswith("* "),
            check_code=parse_int(row.get("check_code")),
            check_duration=parse_int(row.get("check_duration")),
            last_chk=_text(row.get("last_chk")),
            lastchg=parse_int(row.get("lastchg")),
            chkfail=parse_int(row.get("chkfail")),
            downtime=parse_int(row.get("downtime")),
            address=_text(row.get("addr")),
            requests=_requests(row),
            connection_errors=_count(row.get("econ")) + _count(row.get("wretr")),
            cache_lookups=_count(row.get("cache_lookups")),
            cache_hits=_count(row.get("cache_hits")),
        )
