"""``bascule ha ...``: this node of the HA pair (the document's ``high_availability``).

``status`` shows which node this is, its peer, its role (active, standby, held back) and
VRRP's state; ``standby`` hands the VIPs to the peer at once (a planned failover, for
maintenance) and stands by, ready to take over again if the peer fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import typer
from rich.text import Text

from bascule.cli import output
from bascule.cli.session import JsonFlag, Session

if TYPE_CHECKING:  # the HTTP client is imported when a command runs (see session.client)
    from bascule.cli.client import BasculeClient

app = typer.Typer(help="High availability: this node of the pair.", no_args_is_help=True)

ROLE_STYLES = {"active": "green", "standby": "cyan", "held": "red", "unknown": "yellow"}


@app.command()
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show this node's role in the pair, its peer and VRRP's state."""
    _show(ctx, as_json, lambda api: api.ha_status())


@app.command()
def standby(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Hand the VIPs to the peer now (on the active), then stand by."""
    _show(ctx, as_json, lambda api: api.ha_standby())


def _show(
    ctx: typer.Context, as_json: bool, call: Callable[[BasculeClient], Mapping[str, Any]]
) -> None:
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        report = call(api)
    if session.json:
        output.print_json(report)
    else:
        print_status(report)


def _node(node: Mapping[str, Any] | None) -> str:
    if not node:
        return "-"
    return f"{node.get('name')} ({node.get('address')}, priority {node.get('priority')})"


def print_status(report: Mapping[str, Any]) -> None:
    role = str(report.get("role"))
    vrrp = report.get("vrrp") or {}
    rows: list[tuple[str, Any]] = [
        ("role", Text(role, style=ROLE_STYLES.get(role, ""))),
        ("node", _node(report.get("node"))),
        ("peer", _node(report.get("peer"))),
        ("revision", report.get("revision")),
    ]
    if vrrp:
        rows.append(("vrrp", f"{vrrp.get('state')} (priority {vrrp.get('priority')})"))
    if report.get("detail"):
        rows.append(("detail", report.get("detail")))
    output.console().print(output.properties(rows))
