"""HAProxy's processes as values: the master CLI's ``show proc`` (management.txt 9.4.1) and a
worker's limits and uptime (``show info``).

Where it sits: the shell (shell.py) asks the master which workers serve the current
configuration and which old ones finish their connections after a reload; the engine's
``info`` shows the limits the worker runs with (maxconn, descriptors). Pure.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from bascule.errors import EngineError


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
