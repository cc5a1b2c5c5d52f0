"""``bascule limits show VS``: the busiest clients of a service and whether a limit holds them.

Reads the service's per-client counters (connections at once, new connections and HTTP
requests over the last second), busiest first.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bascule.cli import output
from bascule.cli.session import JsonFlag, Session

app = typer.Typer(help="Limits: who a service's per-client limits hold.", no_args_is_help=True)


@app.command()
def show(
    ctx: typer.Context,
    service: Annotated[
        str, typer.Argument(help="A virtual service, or SERVICE/SUB.", show_default=False)
    ],
    top: Annotated[int, typer.Option("--top", help="How many clients, busiest first.")] = 20,
    rule: Annotated[
        str | None, typer.Option("--rule", help="A content rule's limits instead.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the busiest clients of a virtual service and whether they are limited."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.client_loads(service, top, rule)
    if session.json:
        output.print_json(answer)
        return
    title = f"clients of {service}" + (f" rule {rule}" if rule else "")
    grid = output.table("client", "connections", "conn/s", "req/s", "limited", title=title)
    for client in answer.get("clients") or []:
        grid.add_row(
            output.text(client.get("client")),
            output.text(client.get("connections")),
            output.text(client.get("connections_per_second")),
            output.text(client.get("requests_per_second")),
            output.text("yes" if client.get("limited") else "no"),
        )
    output.console().print(grid)
