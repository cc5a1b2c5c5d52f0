"""``bascule backup`` and ``bascule restore``: the configuration and the certificate store as a
file, and back.

Both ends of the flow of a change, through the daemon's API: ``backup`` writes the current
document with the certificate store's certificates (``certificate_store``); with
``--with-keys`` their private keys too, and the HTTP users with their password hashes
(``http_user_store``), sealed with a passphrase (typed twice at a hidden prompt, or the first
line of ``--passphrase-file``), never in clear. The file is written 0600, also over an
existing file. ``restore`` sends a file back: the stores first, then the document as a new
revision; it asks for the passphrase when the file holds sealed keys or hashes, and says when
a file carries no keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from bascule.cli import output
from bascule.cli.certificates import read_file
from bascule.cli.errors import CliError
from bascule.cli.session import JsonFlag, Session

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="The passphrase of the private keys, on the file's first line.",
        show_default=False,
    ),
]


def read_passphrase(path: Path | None, *, confirm: bool) -> str:
    """From ``--passphrase-file``, else a hidden prompt (typed twice when ``confirm``)."""
    if path is not None:
        lines = read_file(path, "--passphrase-file").decode(errors="replace").splitlines()
        if not lines or not lines[0]:
            raise CliError(f"--passphrase-file {path}: its first line is empty")
        return lines[0]
    value: str = typer.prompt("passphrase", hide_input=True, confirmation_prompt=confirm)
    return value


def backup(
    ctx: typer.Context,
    output_file: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write here (default: stdout).", show_default=False),
    ] = None,
    with_keys: Annotated[
        bool,
        typer.Option(
            "--with-keys",
            help="Add the certificates' private keys and the HTTP users' password hashes, "
            "sealed with a passphrase.",
        ),
    ] = False,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Back up the configuration and the stores (keys and HTTP users only sealed)."""
    session = Session.of(ctx)
    passphrase = read_passphrase(passphrase_file, confirm=True) if with_keys else None
    with session.client() as api:
        text = api.backup(passphrase)
    if output_file is None:
        typer.echo(text, nl=False)
        return
    try:
        write_private(output_file, text.encode())
    except OSError as exc:
        raise CliError(f"--output {output_file}: {exc.strerror or exc}") from exc
    typer.echo(f"wrote {output_file}")


def restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file of `bascule backup`.", show_default=False)],
    passphrase_file: PassphraseFile = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Restore a backup: its certificate store, then its document as a new revision."""
    session = Session.of(ctx, json=as_json)
    data = read_file(file, "FILE")
    passphrase = None
    if passphrase_file is not None or _keys_sealed(data):
        passphrase = read_passphrase(passphrase_file, confirm=False)
    with session.client() as api:
        result = api.restore(data, passphrase=passphrase, dry_run=dry_run)
    output.print_change(result, as_json=session.json)
    said = [
        part
        for part in str(result.get("message") or "").split("; ")
        if "certificate" in part or "HTTP user" in part
    ]
    if said and not session.json:
        output.console().print(output.text("; ".join(said)), soft_wrap=True)


def write_private(path: Path, data: bytes) -> None:
    """``data`` into ``path``, readable by its owner only (0600), even if the file existed
    with a wider mode: a backup may hold sealed keys and hashes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, 0o600)
        file.write(data)


def _keys_sealed(data: bytes) -> bool:
    """Whether the file holds sealed keys or HTTP user hashes (then the passphrase is asked)."""
    import yaml

    try:
        content: Any = yaml.safe_load(data)
    except yaml.YAMLError:
        return False  # the daemon says what is wrong with the file
    if not isinstance(content, dict):
        return False
    store, users = content.get("certificate_store"), content.get("http_user_store")
    return (isinstance(store, dict) and bool(store.get("keys"))) or isinstance(users, dict)
