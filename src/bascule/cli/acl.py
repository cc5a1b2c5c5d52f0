"""``bascule acl show|import|set|block|unblock|delete``: the document's named address lists.

``import NAME FILE`` sends the file's text (one address or CIDR network a line, ``#``
comments); the daemon refuses it with every bad line by its number and changes nothing, or
makes the list hold exactly the file's entries (a new revision). The kernel's filter refills
the list's sets in place: no rule, no HAProxy reload. ``block NAME`` drops the list's clients
on every virtual service (the document's ``block``), ``unblock NAME`` stops it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bascule.cli import output
from bascule.cli.errors import CliError
from bascule.cli.session import JsonFlag, Session

app = typer.Typer(
    help="Access lists: addresses and networks to block or allow.", no_args_is_help=True
)

Name = Annotated[str, typer.Argument(help="The access list.", show_default=False)]


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One list's entries.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the access lists (entries, where used, packets dropped), or one list's entries."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.access_list(name) if name else api.access_lists()
    if session.json:
        output.print_json(answer)
        return
    if name:
        for entry in answer.get("addresses") or []:
            output.console().print(output.text(entry))
        return
    grid = output.table("name", "entries", "used by", "dropped packets", "file")
    for item in answer.get("items") or []:
        grid.add_row(
            output.text(item.get("name")),
            output.text(item.get("entries")),
            output.text(", ".join(item.get("used_by") or []) or "-"),
            output.text(item.get("dropped_packets")),
            output.text(item.get("file") or "-"),
        )
    output.console().print(grid)


@app.command("import")
def import_(
    ctx: typer.Context,
    name: Name,
    file: Annotated[Path, typer.Argument(help="One address or CIDR a line; # comments.")],
    as_json: JsonFlag = False,
) -> None:
    """Make a list hold exactly a file's entries (bad lines are refused by number)."""
    session = Session.of(ctx, json=as_json)
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {file}: {exc}") from exc
    with session.client() as api:
        result = api.import_access_list(name, text, file.name)
    output.print_change(result, as_json=session.json)


@app.command("set")
def set_(
    ctx: typer.Context,
    name: Name,
    addresses: Annotated[list[str], typer.Argument(help="Addresses and CIDR networks.")],
    as_json: JsonFlag = False,
) -> None:
    """Make a list hold exactly these entries: `acl set blocked 198.18.7.0/24 198.18.9.9`."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        result = api.set_access_list(name, addresses)
    output.print_change(result, as_json=session.json)


@app.command()
def block(ctx: typer.Context, name: Name, as_json: JsonFlag = False) -> None:
    """Drop the list's clients on every virtual service (the document's block)."""
    _set_blocked(ctx, name, blocked=True, as_json=as_json)


@app.command()
def unblock(ctx: typer.Context, name: Name, as_json: JsonFlag = False) -> None:
    """Stop dropping the list's clients everywhere (services' own access still holds)."""
    _set_blocked(ctx, name, blocked=False, as_json=as_json)


def _set_blocked(ctx: typer.Context, name: str, *, blocked: bool, as_json: bool) -> None:
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        result = api.block_access_list(name, blocked)
    output.print_change(result, as_json=session.json)


@app.command()
def delete(ctx: typer.Context, name: Name, as_json: JsonFlag = False) -> None:
    """Remove a list (refused while block or a service uses it)."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        result = api.delete_access_list(name)
    output.print_change(result, as_json=session.json)
