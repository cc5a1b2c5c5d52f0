"""``bascule page ...``: the page store, the HTML pages ``not_available.respond.body_file``
names (a maintenance page). Files are read here and sent as text, so the commands work the
same against a remote daemon (``--url``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bascule.cli import output
from bascule.cli.errors import CliError
from bascule.cli.session import JsonFlag, Session

app = typer.Typer(
    help="The page store (maintenance pages): add, list, show, delete.", no_args_is_help=True
)

Name = Annotated[str, typer.Argument(help="The page's name in the store.", show_default=False)]
PageFile = Annotated[Path, typer.Option("--file", help="The page: an HTML file, UTF-8.")]


@app.command("add")
def add(ctx: typer.Context, name: Name, file: PageFile, as_json: JsonFlag = False) -> None:
    """Add a page (a name already used is refused: pages are not replaced while served)."""
    session = Session.of(ctx, json=as_json)
    try:
        content = file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise CliError(f"--file {file}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CliError(f"--file {file}: not UTF-8 text (byte {exc.start})") from exc
    with session.client() as api:
        answer = api.add_page(name, content)
    if session.json:
        output.print_json(answer)
    else:
        output.console().print(output.text(f"added {name} ({answer.get('size')} bytes)"))


@app.command("list")
def list_pages(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every page: name, size, when it was added, which services name it."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.pages()
    if session.json:
        output.print_json(answer)
        return
    grid = output.table("name", "bytes", "added", "used by")
    for item in answer.get("items") or []:
        grid.add_row(
            output.text(item.get("name"), "bold"),
            output.text(item.get("size")),
            output.text(output.minute(item.get("created_at"))),
            output.text(", ".join(item.get("used_by") or []) or "-"),
        )
    output.console().print(grid)


@app.command("show")
def show(ctx: typer.Context, name: Name, as_json: JsonFlag = False) -> None:
    """One page: its content, as stored."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        item = api.page(name)
    if session.json:
        output.print_json(item)
    else:
        typer.echo(item.get("content", ""), nl=False)


@app.command("delete")
def delete(ctx: typer.Context, name: Name, as_json: JsonFlag = False) -> None:
    """Delete a page (refused while a virtual service names it)."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.delete_page(name)
    if session.json:
        output.print_json(answer)
    else:
        output.console().print(output.text(f"deleted {name}"))
