"""``bascule persistence show|clear VS``: the clients a virtual service keeps on a server.

``show`` lists the entries of the service's persistence tables (key, real server, seconds
before expiry); ``clear`` empties them, so every client is balanced afresh.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bascule.cli import output
from bascule.cli.session import JsonFlag, Session

app = typer.Typer(
    help="Persistence: list or forget the clients kept on a real server.", no_args_is_help=True
)

Service = Annotated[str, typer.Argument(help="The virtual service.", show_default=False)]


@app.command()
def show(ctx: typer.Context, service: Service, as_json: JsonFlag = False) -> None:
    """List the persisted clients of a virtual service."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.persistence(service)
    if session.json:
        output.print_json(answer)
        return
    entries = answer.get("entries") or []
    grid = output.table(
        "key", "real server", "expires in", "table", title=f"persistence of {service}"
    )
    for entry in entries:
        grid.add_row(
            output.text(entry.get("key")),
            output.text(entry.get("real_server") or "?"),
            output.text(f"{float(entry.get('expires_in_s') or 0):.0f}s"),
            output.text(entry.get("table")),
        )
    output.console().print(grid)
    output.console().print(f"{len(entries)} entries")


@app.command()
def clear(ctx: typer.Context, service: Service, as_json: JsonFlag = False) -> None:
    """Forget every persisted client of a virtual service."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.clear_persistence(service)
    if session.json:
        output.print_json(answer)
    else:
        output.console().print(f"cleared {answer.get('cleared', 0)} entries of {service}")
