"""``bascule ha ...``: this node of the HA pair (the document's ``high_availability``).

``status`` shows which node this is, its peer, its role (active, standby, held back), VRRP's
state and the configuration sync (the peer, last sync, the revision on each node, its
health); ``standby`` hands the VIPs to the peer at once (a planned failover, for maintenance)
and stands by, ready to take over again if the peer fails; ``takeover`` asks the active for
them from the standby. ``join`` makes this node the pair's second (the active's history and
certificate store come here, and it follows from then on); ``leave`` ends that link.
``resolve --keep NODE``, after a partition with changes on both nodes, keeps one node's
history on both (the other's revisions are archived in a file on that node, which it names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from bascule.cli import output
from bascule.cli.errors import CliError
from bascule.cli.session import JsonFlag, Session

if TYPE_CHECKING:  # the HTTP client is imported when a command runs (see session.client)
    from bascule.cli.client import BasculeClient

app = typer.Typer(help="High availability: this node of the pair.", no_args_is_help=True)

ROLE_STYLES = {"active": "green", "standby": "cyan", "held": "red", "unknown": "yellow"}
SYNC_STYLES = {"in_sync": "green", "following": "cyan", "diverged": "red", "unreachable": "red"}


@app.command()
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show this node's role in the pair, its peer and VRRP's state."""
    _show(ctx, as_json, lambda api: api.ha_status())


@app.command()
def standby(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Hand the VIPs to the peer now (on the active), then stand by."""
    _show(ctx, as_json, lambda api: api.ha_standby())


@app.command()
def takeover(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Take the VIPs from the active now (on the joined standby): a planned failover."""
    _show(ctx, as_json, lambda api: api.ha_takeover())


@app.command()
def join(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The active's listener, https://ADDRESS:8443")],
    token: Annotated[str, typer.Option(help="An administrator's API token on the active")],
    fingerprint: Annotated[
        str | None,
        typer.Option(help="The SHA-256 of the active's listener certificate (bascule status)"),
    ] = None,
    ca_cert: Annotated[
        Path | None,
        typer.Option(
            "--ca-cert", help="The CA that signed the active's listener certificate (PEM)"
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Join this node to the pair's active: pin its certificate, take its configuration,
    certificate store and history, and follow it from then on."""
    pem = None
    if ca_cert is not None:
        try:
            pem = ca_cert.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"--ca-cert: cannot read {ca_cert}: {exc}") from exc
    _show(ctx, as_json, lambda api: api.ha_join(url, token, fingerprint=fingerprint, ca_cert=pem))


@app.command()
def leave(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """End the configuration sync with the peer (on both nodes); each keeps its
    configuration, and this node takes changes again."""
    _show(ctx, as_json, lambda api: api.ha_leave())


@app.command()
def resolve(
    ctx: typer.Context,
    keep: Annotated[
        str, typer.Option(help="The node whose history both nodes keep (its name, e.g. lb1)")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Keep one node's history on both, after the two diverged (writes on both sides of a
    partition); the other node's revisions are archived there, in a file this names."""
    _show(ctx, as_json, lambda api: api.ha_resolve(keep))


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


def _marks(marks: list[Mapping[str, Any]]) -> str:
    return "; ".join(
        f"{mark.get('number')} by {mark.get('author')} at {mark.get('created_at')}"
        for mark in marks
    )


def _resolution(resolution: Mapping[str, Any]) -> str:
    archived = ", ".join(str(n) for n in resolution.get("archived") or []) or "none"
    return (
        f"kept {resolution.get('kept')}'s history ({resolution.get('at')}, by "
        f"{resolution.get('by')}); revisions {archived} of {resolution.get('archived_node')} "
        f"archived in {resolution.get('archive') or '-'} on {resolution.get('archived_node')}"
    )


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
    sync = report.get("sync") or {}
    if sync.get("joined"):
        health = str(sync.get("health"))
        rows.append(("sync", Text(health, style=SYNC_STYLES.get(health, "yellow"))))
        rows.append(("sync peer", f"{sync.get('peer_url')} ({sync.get('peer_fingerprint')})"))
        rows.append(("last sync", sync.get("last_sync_at") or "never"))
        revisions = f"here {report.get('revision')}, peer {sync.get('peer_revision')}"
        rows.append(("revisions", revisions))
        if sync.get("error"):
            rows.append(("sync error", sync.get("error")))
        conflict = sync.get("conflict")
        if conflict:
            rows.append(("conflict", f"the histories diverge after revision {conflict['fork']}"))
            rows.append(("  here", _marks(conflict.get("here") or [])))
            rows.append(("  on the peer", _marks(conflict.get("peer") or [])))
            rows.append(("  resolve", "bascule ha resolve --keep NODE (the other's are archived)"))
        resolution = sync.get("resolution")
        if resolution:
            rows.append(("last resolve", _resolution(resolution)))
        rows.append(("stick tables", report.get("tables") or "-"))
        rows.append(("L4 flows", f"conntrackd {report.get('flows') or '-'}"))
    elif report.get("role") not in (None, "single"):
        rows.append(("sync", "not joined (bascule ha join on the second node)"))
    output.console().print(output.properties(rows))
