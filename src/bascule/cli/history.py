"""``bascule history``, ``show-revision``, ``diff`` and ``rollback``: the revisions of the
configuration, who made them and why, and going back to one (as a new revision).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from bascule.cli import output
from bascule.cli.session import JsonFlag, Session

app = typer.Typer(help="The history of configuration revisions.")

Number = Annotated[int, typer.Argument(help="A revision number.", min=1, show_default=False)]


@app.callback(invoke_without_command=True)
def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many revisions.", min=1)] = 20,
    before: Annotated[
        int | None, typer.Option("--before", help="Only revisions older than this one.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the revisions, newest first (`history show N` shows one)."""
    if ctx.invoked_subcommand is not None:
        return
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.revisions(limit=limit, before=before)
    if session.json:
        output.print_json(answer)
        return
    items = answer.get("items") or []
    out = output.console()
    if not items:
        out.print("no revisions yet")
        return
    grid = output.table("revision", "created", "author", "changes", "message")
    for item in items:
        grid.add_row(
            output.text(item.get("number"), "bold"),
            output.text(_when(item.get("created_at"))),
            output.text(item.get("author")),
            output.text(item.get("changes")),
            output.text(item.get("message")),
        )
    out.print(grid)
    if answer.get("next_before") is not None:
        out.print(Text(f"older: bascule history --before {answer['next_before']}", style="dim"))


def _when(created_at: object) -> str:
    """``2026-11-26T06:45:08.201002Z`` -> ``2026-11-26 06:45:08Z`` for the table."""
    text = str(created_at or "")
    stamp, _, fraction = text.partition(".")
    return stamp.replace("T", " ") + ("Z" if fraction.endswith("Z") else "")


@app.command("show")
def show(
    ctx: typer.Context,
    number: Number,
    document: Annotated[
        bool, typer.Option("--document", help="Also print the revision's whole document.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show one revision: who, when, why, and what it changed."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        revision = api.revision(number)
    if session.json:
        output.print_json(revision)
        return
    out = output.console()
    rows = [
        (key, revision.get(key))
        for key in ("number", "created_at", "author", "message", "rolled_back_from")
        if key != "rolled_back_from" or revision.get(key) is not None
    ]
    out.print(output.properties(rows))
    out.print()
    if revision.get("diff_text"):
        output.print_diff(str(revision["diff_text"]))
    else:
        out.print("no changes")
    if document:
        import yaml

        out.print()
        dumped = yaml.safe_dump(revision.get("document") or {}, sort_keys=False, allow_unicode=True)
        out.print(Text(dumped.rstrip()), soft_wrap=True)


def diff(
    ctx: typer.Context,
    a: Annotated[int, typer.Argument(help="The older revision.", show_default=False)],
    b: Annotated[int, typer.Argument(help="The newer revision.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Show what changed from revision A to revision B."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.diff(a, b)
    if session.json:
        output.print_json(answer)
    elif answer.get("text"):
        output.print_diff(str(answer["text"]))
    else:
        output.console().print(f"revisions {a} and {b} hold the same configuration")


def rollback(ctx: typer.Context, number: Number, as_json: JsonFlag = False) -> None:
    """Make revision N's configuration current again (as a new revision)."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        result = api.rollback(number)
    output.print_change(result, as_json=session.json)
