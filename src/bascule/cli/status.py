"""``bascule status``: what runs, as the daemon sees it now.

The control plane's status (the last apply, ``apply_error``) and the data plane's (servers up
or down, connections) are shown apart, as DESIGN.md asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from bascule.cli import output
from bascule.cli.errors import CliError
from bascule.cli.session import JsonFlag, Session

MESSAGE_STYLES = {"apply_error": "red", "down": "red", "degraded": "yellow"}


def status(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Only this virtual service.", show_default=False)
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the status of the virtual services and their real servers."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        report = api.status()
    services = list(report.get("virtual_services") or [])
    if name is not None:
        services = [vs for vs in services if vs.get("name") == name]
        if not services:
            raise CliError(f"there is no virtual service named {name!r}")
        report = {**report, "virtual_services": services}
    if session.json:
        output.print_json(report)
        return
    out = output.console()
    _print_control_plane(out, report)
    for alert in report.get("certificates") or []:
        style = "yellow" if alert.get("level") == "warning" else "bold red"
        out.print(Text(f"certificate: {alert.get('message')}", style=style), soft_wrap=True)
    if not services:
        out.print("no virtual services")
        return
    out.print()
    out.print(_services_table(services))
    for vs in services:
        out.print()
        _print_l4_scheduling(out, report, vs)
        _print_servers(out, vs)
        _print_effective_weights(out, vs)
        for rs in vs.get("real_servers") or []:
            if rs.get("warning"):
                warning = f"{vs.get('name')} {rs.get('key')}: {rs['warning']}"
                out.print(Text(warning, style="yellow"), soft_wrap=True)


def _print_control_plane(out: Console, report: Mapping[str, Any]) -> None:
    line = Text(f"revision {_show(report.get('revision'))}")
    line.append(f", applied {_show(report.get('applied_revision'))}")
    for name, info in (report.get("engine") or {}).items():
        line.append(f", engine {_engine(name, info)}")
    out.print(line, soft_wrap=True)
    if not report.get("apply_ok", True):
        message = report.get("apply_message") or "the last change could not be applied"
        out.print(Text(f"apply error: {message}", style="bold red"), soft_wrap=True)


def _engine(name: str, info: Any) -> str:
    """``haproxy 2.6.12 (running)`` from ``{"version": "2.6.12", "running": true, ...}``."""
    if not isinstance(info, Mapping):
        return f"{name} {info}"
    words = [name]
    if info.get("version"):
        words.append(str(info["version"]))
    if info.get("idle"):
        words.append("(idle: no service of its kind)")
    elif "running" in info:
        words.append("(running)" if info["running"] else "(not running)")
    pending = info.get("reload_pending")
    if isinstance(pending, Mapping):
        # servers added at runtime, made ordinary ones by a deferred reload
        words.append(f"(reload pending, due in {pending.get('due_in_s', 0):.1f} s)")
    return " ".join(words)


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


def _services_table(services: list[Mapping[str, Any]]) -> Any:
    grid = output.table(
        "virtual service",
        "address",
        "ports",
        "mode",
        "scheduler",
        "status",
        "up",
        "connections",
        "message",
    )
    for vs in services:
        grid.add_row(
            output.text(vs.get("name"), "bold"),
            output.text(", ".join(a for a in (vs.get("address"), vs.get("address6")) if a)),
            output.text(f"{vs.get('ports')}/{vs.get('protocol')}"),
            output.text(f"{vs.get('mode')} {vs.get('type')}"),
            output.text(vs.get("scheduler")),
            output.status_text(str(vs.get("status"))),
            output.text(f"{vs.get('up', 0)}/{vs.get('total', 0)}"),
            output.text(vs.get("current_connections", 0)),
            output.text(vs.get("message") or "", MESSAGE_STYLES.get(str(vs.get("status")), "")),
        )
    return grid


def _print_l4_scheduling(out: Console, report: Mapping[str, Any], vs: Mapping[str, Any]) -> None:
    """How the kernel picks for an L4 service: DSR maps every scheduler onto Maglev."""
    engine = (report.get("engine") or {}).get("nftables")
    if vs.get("mode") != "l4" or not isinstance(engine, Mapping):
        return
    seen = (engine.get("services") or {}).get(vs.get("name"))
    if not isinstance(seen, Mapping):
        return
    line = f"{vs.get('name')}: {seen.get('forwarding')}, {vs.get('scheduler')} runs as "
    out.print(Text(line + str(seen.get("selection")), style="dim"), soft_wrap=True)


def _print_servers(out: Console, vs: Mapping[str, Any]) -> None:
    servers = vs.get("real_servers") or []
    title = f"{vs.get('name')}: real servers"
    if not servers:
        out.print(Text(f"{title}: none", style="bold"))
        return
    # L4 rows add the kernel's own counters per real server (nftables: new connections,
    # packets, bytes); L7 rows keep their documented columns (HAProxy counts no packets).
    l4 = vs.get("mode") == "l4"
    counters = ("new", "packets", "bytes in", "bytes out") if l4 else ()
    grid = output.table(
        "real server",
        "status",
        "weight",
        "engine weight",
        "check",
        "code",
        "duration",
        "connections",
        *counters,
        "critical",
        title=title,
    )
    for rs in servers:
        duration = rs.get("check_duration_ms")
        check = rs.get("check_result")
        if rs.get("check_detail"):
            check = f"{check or ''} {rs['check_detail']}".strip()
        traffic = (
            [
                output.text(rs.get(key, 0))
                for key in ("total_connections", "packets", "bytes_in", "bytes_out")
            ]
            if l4
            else []
        )
        grid.add_row(
            output.text(rs.get("key"), "bold"),
            output.status_text(str(rs.get("status"))),
            output.text(rs.get("weight")),
            output.text(rs.get("engine_weight")),
            output.text(check),
            output.text(rs.get("check_code")),
            output.text(None if duration is None else f"{duration} ms"),
            output.text(rs.get("current_connections", 0)),
            *traffic,
            output.text(rs.get("critical")),
        )
    out.print(grid)


def _print_effective_weights(out: Console, vs: Mapping[str, Any]) -> None:
    """adaptive / weighted_response_time: the weight each server gets now, and why."""
    servers = [rs for rs in vs.get("real_servers") or [] if rs.get("weight_reason")]
    if not servers:
        return
    grid = output.table(
        "real server",
        "effective weight",
        "why",
        title=f"{vs.get('name')}: effective weights ({vs.get('scheduler')})",
    )
    for rs in servers:
        grid.add_row(
            output.text(rs.get("key"), "bold"),
            output.text(rs.get("effective_weight")),
            output.text(rs.get("weight_reason")),
        )
    out.print(grid)
