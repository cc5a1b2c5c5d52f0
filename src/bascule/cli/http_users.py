"""``bascule http-user list|add|passwd|delete``: the users of services' basic authentication.

A virtual service's ``authentication.users`` names them; the store keeps their passwords as
yescrypt hashes that HAProxy checks. Everything needs the ``administer`` permission. Passwords
are typed twice at a hidden prompt, or read from the first line of stdin with
``--password-stdin`` (for scripts); never on the command line, where ``ps`` and the shell
history would show them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bascule.cli import output
from bascule.cli.session import JsonFlag, Session
from bascule.cli.users import PasswordStdin, read_password

app = typer.Typer(
    help="Users of the services' HTTP basic authentication (authentication.users).",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(help="The HTTP user's name.", show_default=False)]


@app.command("list")
def list_users(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every HTTP user: name, when added, when its password changed, which services name it."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.http_users()
    if session.json:
        output.print_json(answer)
        return
    grid = output.table("user", "added", "password changed", "used by")
    for item in answer.get("items") or []:
        grid.add_row(
            output.text(item.get("name"), "bold"),
            output.text(output.minute(item.get("created_at"))),
            output.text(output.minute(item.get("password_changed_at"))),
            output.text(", ".join(item.get("used_by") or []) or "-"),
        )
    output.console().print(grid)


@app.command()
def add(
    ctx: typer.Context, name: Name, password_stdin: PasswordStdin = False, as_json: JsonFlag = False
) -> None:
    """Add an HTTP user with a password (at least 8 characters)."""
    session = Session.of(ctx, json=as_json)
    password = read_password(password_stdin)
    with session.client() as api:
        answer = api.add_http_user(name, password)
    session.done(answer, f"added the HTTP user {name}")


@app.command()
def passwd(
    ctx: typer.Context, name: Name, password_stdin: PasswordStdin = False, as_json: JsonFlag = False
) -> None:
    """Set an HTTP user's password; HAProxy reloads when a service names the user."""
    session = Session.of(ctx, json=as_json)
    password = read_password(password_stdin, "new password")
    with session.client() as api:
        answer = api.set_http_user_password(name, password)
    session.done(answer, f"changed the password of the HTTP user {name}")


@app.command()
def delete(
    ctx: typer.Context,
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete an HTTP user (refused while a service's authentication names it)."""
    session = Session.of(ctx, json=as_json)
    if not yes:
        typer.confirm(f"delete the HTTP user {name}?", abort=True)
    with session.client() as api:
        answer = api.delete_http_user(name)
    session.done(answer, f"deleted the HTTP user {name}")
