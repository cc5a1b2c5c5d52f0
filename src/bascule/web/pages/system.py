"""System: the appliance itself — Bascule's version, the engines, the listener, recent logs.

Outside the flow of a change: what the daemon knows of the machine it drives. The daemon's
system probe (``runner.system``: engine versions and state, the data directory, the HTTPS
listener and its certificate) is shown to every role; the recent log lines (kept in memory by
``daemon/logs.py``) to administrators only, as they name users and addresses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

import bascule
from bascule.model.access import Permission
from bascule.web.auth import Reader
from bascule.web.services import Services
from bascule.web.templating import render

router = APIRouter()

LOG_LINES = 200
#: Engine facts shown in the table; the rest goes under "details".
_ENGINE_COLUMNS = ("version", "running")
#: Probe keys the page lays out itself; any other key is listed as it comes.
_KNOWN = ("version", "engines", "data_dir", "pid", "listen", "tls")


@dataclass(frozen=True, kw_only=True)
class EngineRow:
    name: str
    version: str
    state: str  # running | idle | stopped
    details: list[tuple[str, str]]


def show(value: Any) -> str:
    """A probe value in one line: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def engine_rows(engines: Mapping[str, Any]) -> list[EngineRow]:
    rows = []
    for name, info in sorted(engines.items()):
        facts: Mapping[str, Any] = info if isinstance(info, Mapping) else {"version": info}
        if facts.get("running"):
            state = "running"
        elif facts.get("idle"):
            state = "idle"  # nothing to run (no service of its mode): not a fault
        else:
            state = "stopped"
        details = [
            (key, show(value))
            for key, value in facts.items()
            if key not in (*_ENGINE_COLUMNS, "idle") and value not in (None, "", [], {})
        ]
        rows.append(
            EngineRow(
                name=name,
                version=str(facts.get("version", "unknown")),
                state=state,
                details=details,
            )
        )
    return rows


@router.get("/system", response_class=HTMLResponse)
async def system_page(request: Request, session: Reader, services: Services) -> HTMLResponse:
    probe = await services.system()
    engines = probe.get("engines")
    tls = probe.get("tls")
    may_read_logs = session.actor.may(Permission.administer)
    return render(
        request,
        "system/index.html",
        {
            "page": "system",
            "title": "System",
            "version": bascule.__version__,
            "engines": engine_rows(engines if isinstance(engines, Mapping) else {}),
            "data_dir": probe.get("data_dir"),
            "pid": probe.get("pid"),
            "listen": probe.get("listen"),
            "tls": [(k, show(v)) for k, v in tls.items()] if isinstance(tls, Mapping) else [],
            "other": [(k, show(v)) for k, v in probe.items() if k not in _KNOWN],
            "samples": services.statistics.samples,
            "stats_interval": services.statistics.interval,
            "may_read_logs": may_read_logs,
            "log_lines": services.logs(LOG_LINES) if may_read_logs else [],
        },
    )
