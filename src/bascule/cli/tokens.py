"""``bascule token list|create|revoke``: API tokens, for scripts and the remote CLI.

Beside the flow of a change: a token is how a program becomes a user with a role. ``create``
prints the secret once (``bsc_<id>_<secret>``); Bascule keeps only its SHA-256, so a lost
token is revoked and replaced, never shown again. Use it as ``bascule --url https://lb:8443
--token bsc_...`` (or ``BASCULE_URL``/``BASCULE_TOKEN``), or ``Authorization: Bearer``.
An administrator sees and revokes every token and may create one for any user; anyone else
only their own, at or below their own role.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from bascule.cli import output
from bascule.cli.session import JsonFlag, Session
from bascule.cli.users import RoleOption, check_role

app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Only this user's tokens.", show_default=False)
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List API tokens (revoked ones too), without their secrets."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.tokens(owner=owner)
    if session.json:
        output.print_json(answer)
        return
    grid = output.table("id", "name", "role", "owner", "created", "last used", "state")
    for token in answer.get("items") or []:
        revoked = token.get("revoked_at")
        grid.add_row(
            output.text(token.get("id"), "bold"),
            output.text(token.get("name")),
            output.text(token.get("role")),
            output.text(token.get("owner")),
            output.text(output.minute(token.get("created_at"))),
            output.text(output.minute(token.get("last_used_at"))),
            output.text("revoked" if revoked else "active", "bright_black" if revoked else "green"),
        )
    output.console().print(grid)


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="What the token is for.", show_default=False)],
    role: RoleOption = "viewer",
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="Whose token (administrators only).", show_default=False),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a token; its secret is printed this once."""
    session = Session.of(ctx, json=as_json)
    check_role(role)
    with session.client() as api:
        answer = api.create_token(name, role, owner=owner)
    if session.json:
        output.print_json(answer)
        return
    token = answer.get("token") or {}
    out = output.console()
    out.print(
        output.text(
            f"created token {token.get('id')} ({token.get('role')}) for {token.get('owner')}"
        )
    )
    out.print(Text(str(answer.get("secret")), style="bold"), soft_wrap=True)
    out.print(Text("This secret is shown once: store it now.", style="yellow"))


@app.command()
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Revoke a token: it stops working at once."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.revoke_token(token_id)
    if session.json:
        output.print_json(answer)
    else:
        output.console().print(output.text(f"revoked token {token_id}"))
