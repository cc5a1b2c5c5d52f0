"""The global options of one ``bascule`` invocation, shared by every command.

The root callback in ``main`` builds a ``Session`` from ``--data-dir``, ``--json``, ``--url``,
``--token``, ``--ca-cert`` and ``--insecure`` and stores it on the click context; commands (the
daemon's ``run`` and ``demo`` too) read it back with ``Session.of(ctx)``. With ``--url`` every
command talks to that daemon over HTTPS with the token; without it, to the local socket.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bascule.cli.errors import CliError

if TYPE_CHECKING:
    from bascule.cli.client import BasculeClient

DEFAULT_DATA_DIR = Path("/var/lib/bascule")
SOCKET_NAME = "bascule.sock"

#: ``--json`` on a command, for those who put it after the command rather than before.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of tables.")]


@dataclass(frozen=True, kw_only=True)
class Session:
    """Where the daemon is and how to print."""

    data_dir: Path = DEFAULT_DATA_DIR
    json: bool = False
    url: str | None = None
    token: str | None = None
    ca_cert: Path | None = None
    insecure: bool = False

    @classmethod
    def of(cls, ctx: typer.Context, *, json: bool = False) -> Session:
        """The session of this invocation; ``json`` turns machine output on for one command."""
        session = ctx.find_object(Session)
        if session is None:  # a command invoked without the root callback (tests, embedding)
            data_dir = os.environ.get("BASCULE_DATA_DIR")
            session = Session(data_dir=Path(data_dir) if data_dir else DEFAULT_DATA_DIR)
        return replace(session, json=True) if json and not session.json else session

    @property
    def socket(self) -> Path:
        return self.data_dir / SOCKET_NAME

    @property
    def remote(self) -> bool:
        return self.url is not None

    def done(self, answer: dict[str, object], message: str) -> None:
        """A write's answer: the JSON with ``--json``, else ``message`` and what the daemon
        added to it (its ``message``, in yellow: a reload it made, a warning)."""
        from bascule.cli import output

        if self.json:
            output.print_json(answer)
            return
        output.console().print(output.text(message))
        if answer.get("message"):
            output.console().print(output.text(str(answer["message"]), "yellow"))

    def client(self) -> BasculeClient:
        """A client of the daemon: remote over HTTPS with ``--url``, else the local socket."""
        # Imported here: the HTTP client is the costliest import of a command, and neither
        # ``--help`` nor a usage error needs it.
        from bascule.cli.client import BasculeClient
        from bascule.cli.connection import login_author, tls_context

        if self.url is None:
            if self.token is not None:
                raise CliError("--token goes with --url (a remote daemon); the socket needs none")
            return BasculeClient(self.socket, author=login_author())
        if not self.token:
            raise CliError("--url needs an API token: --token TOKEN or BASCULE_TOKEN")
        verify = tls_context(ca_cert=self.ca_cert, insecure=self.insecure)
        return BasculeClient.over_https(self.url, token=self.token, verify=verify)
