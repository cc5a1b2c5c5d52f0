"""``bascule user list|add|passwd|role|delete``: the people who log in to the web interface.

Beside the flow of a change: accounts decide who may make one. Everything here needs the
``administer`` permission (the local socket is an administrator), except ``passwd`` of one's
own name, which asks for the current password. Passwords are typed twice at a hidden prompt,
or read from the first line of stdin with ``--password-stdin`` (for scripts); never on the
command line, where ``ps`` and the shell history would show them.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bascule.cli import output
from bascule.cli.errors import CliError
from bascule.cli.session import JsonFlag, Session

app = typer.Typer(help="Users of the web interface and the API.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The user's name.", show_default=False)]
ROLES = ("admin", "operator", "viewer")
RoleOption = Annotated[
    str, typer.Option("--role", help="admin, operator or viewer.", show_default=False)
]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
]


def read_password(from_stdin: bool, prompt: str = "password") -> str:
    """A new password: from stdin, or typed twice at a hidden prompt."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin: stdin has no password on its first line")
        return password
    value: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=True)
    return value


def check_role(role: str) -> str:
    if role not in ROLES:
        raise CliError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


@app.command("list")
def list_users(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the users and their roles."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.users()
    if session.json:
        output.print_json(answer)
        return
    grid = output.table("user", "role", "created", "password changed")
    for user in answer.get("items") or []:
        grid.add_row(
            output.text(user.get("name"), "bold"),
            output.text(user.get("role")),
            output.text(output.minute(user.get("created_at"))),
            output.text(output.minute(user.get("password_changed_at"))),
        )
    output.console().print(grid)


@app.command()
def add(
    ctx: typer.Context,
    name: Name,
    role: RoleOption = "viewer",
    password_stdin: PasswordStdin = False,
    as_json: JsonFlag = False,
) -> None:
    """Add a user with a role and a password."""
    session = Session.of(ctx, json=as_json)
    check_role(role)
    password = read_password(password_stdin)
    with session.client() as api:
        answer = api.add_user(name, role, password)
    session.done(answer, f"added {name} ({role})")


@app.command()
def passwd(
    ctx: typer.Context, name: Name, password_stdin: PasswordStdin = False, as_json: JsonFlag = False
) -> None:
    """Set a user's password (your own: the current one is asked first). Their sessions end
    and their API tokens are revoked."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        changes: dict[str, str] = {}
        if session.remote:
            me = api.whoami()
            if me.get("name") == name and "administer" not in (me.get("permissions") or ()):
                if password_stdin:
                    raise CliError("changing your own password needs the prompt (no stdin)")
                changes["current_password"] = typer.prompt("current password", hide_input=True)
        changes["password"] = read_password(password_stdin, "new password")
        answer = api.update_user(name, changes)
    session.done(
        answer,
        f"changed the password of {name}: their sessions ended and their API tokens were revoked",
    )


@app.command()
def role(
    ctx: typer.Context,
    name: Name,
    new_role: Annotated[str, typer.Argument(help="admin, operator or viewer.")],
    as_json: JsonFlag = False,
) -> None:
    """Give a user another role (the last admin stays an admin)."""
    session = Session.of(ctx, json=as_json)
    check_role(new_role)
    with session.client() as api:
        answer = api.update_user(name, {"role": new_role})
    session.done(answer, f"{name} is now {new_role}")


@app.command()
def delete(
    ctx: typer.Context,
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a user: their sessions end and their API tokens are revoked."""
    session = Session.of(ctx, json=as_json)
    if not yes:
        typer.confirm(f"delete the user {name} and revoke their tokens?", abort=True)
    with session.client() as api:
        answer = api.delete_user(name)
    session.done(answer, f"deleted {name}")
