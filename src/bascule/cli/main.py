"""The ``bascule`` command line: the typer app, its global options and ``main()``.

Every command except the daemon's own is a client of the daemon's API (see ``client``). Errors
meant for the user are ``CliError``: the root group prints each of its lines as
``error: <line>`` on stderr and exits 1; usage errors exit 2 as click does.

The daemon's own commands (``run``, ``demo``) are added by the composition root,
``bascule.main``, which is the console script: it is the one module allowed to wire the
daemon to the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from bascule.cli import (
    acl,
    agent,
    backup,
    cache,
    certificates,
    config,
    daemon,
    detect,
    dsr,
    ha,
    history,
    http_users,
    limits,
    logs,
    output,
    pages,
    persistence,
    rs,
    status,
    tokens,
    users,
    vs,
)
from bascule.cli.errors import CliError
from bascule.cli.session import DEFAULT_DATA_DIR, Session


class BasculeGroup(TyperGroup):
    """The root group: turns a ``CliError`` raised by any command into lines on stderr."""

    # ``ctx`` is typer's vendored click Context, which typer does not export under a public name.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            for line in exc.lines:
                # a message can quote what the daemon or a file said: no raw control character
                typer.echo(f"error: {output.clean(line)}", err=True)
            raise typer.Exit(1) from exc


app = typer.Typer(
    name="bascule",
    cls=BasculeGroup,
    help="Bascule load balancer: configure and watch it through its daemon.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            envvar="BASCULE_DATA_DIR",
            help="The daemon's data directory (its socket is bascule.sock there).",
        ),
    ] = DEFAULT_DATA_DIR,
    json: Annotated[
        bool, typer.Option("--json", help="Print the API's JSON instead of tables.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="BASCULE_URL",
            help="A remote Bascule's HTTPS listener, e.g. https://lb1:8443 (needs --token).",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="BASCULE_TOKEN",
            help="API token for --url (bascule token create); prefer the BASCULE_TOKEN "
            "environment variable: a command-line argument is visible in ps.",
            show_default=False,
        ),
    ] = None,
    ca_cert: Annotated[
        Path | None,
        typer.Option(
            "--ca-cert",
            envvar="BASCULE_CA_CERT",
            help="Trust this CA (or the daemon's self-signed certificate) for --url.",
            show_default=False,
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Do not check the certificate of --url (testing only)."),
    ] = False,
) -> None:
    """Bascule load balancer: configure and watch it through its daemon."""
    ctx.obj = Session(
        data_dir=data_dir,
        json=json,
        url=url,
        token=token,
        ca_cert=ca_cert,
        insecure=insecure,
    )


app.command("apply")(config.apply)
app.command("export")(config.export)
app.command("status")(status.status)
app.command("agent")(agent.agent)
app.command("detect")(detect.detect)
app.command("logs")(logs.logs)
app.command("stop")(daemon.stop)
app.add_typer(vs.app, name="vs")
app.add_typer(rs.app, name="rs")
app.add_typer(dsr.app, name="dsr")
app.add_typer(ha.app, name="ha")
app.add_typer(persistence.app, name="persistence")
app.add_typer(history.app, name="history")
app.command("show-revision")(history.show)
app.command("diff")(history.diff)
app.command("rollback")(history.rollback)
app.add_typer(users.app, name="user")
app.add_typer(tokens.app, name="token")
app.add_typer(certificates.app, name="cert")
app.add_typer(pages.app, name="page")
app.add_typer(http_users.app, name="http-user")
app.add_typer(cache.app, name="cache")
app.add_typer(acl.app, name="acl")
app.add_typer(limits.app, name="limits")
app.command("backup")(backup.backup)
app.command("restore")(backup.restore)


def main() -> None:
    """The console script ``bascule``."""
    app()


if __name__ == "__main__":
    main()
