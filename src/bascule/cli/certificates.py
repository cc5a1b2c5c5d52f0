"""``bascule cert ...``: the certificate store, for SSL offload (``tls`` in the document).

Beside the flow of a change: the document names certificates; these commands put them in the
store, through the daemon's API (administrators only; the local socket is one). Files are read
here and sent as PEM (or a PKCS#12 file in base64), so the commands work the same against a
remote daemon (``--url``). Private keys go in and never come back out: ``list`` and ``show``
print public facts and where each entry is used. A password is read from the first line of
``--password-file``, never from the command line, where ``ps`` would show it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from bascule.cli import output
from bascule.cli.errors import CliError
from bascule.cli.session import JsonFlag, Session

app = typer.Typer(
    help="The certificate store: add, list, show, replace, delete, CA bundles, ACME.",
    no_args_is_help=True,
)
ca_app = typer.Typer(help="CA bundles (client_ca, server_ca).", no_args_is_help=True)
app.add_typer(ca_app, name="ca")

Name = Annotated[str, typer.Argument(help="The entry's name in the store.", show_default=False)]
CertOption = Annotated[
    Path | None,
    typer.Option(
        "--cert", help="PEM certificate (a full chain may follow it).", show_default=False
    ),
]
KeyOption = Annotated[
    Path | None, typer.Option("--key", help="PEM private key.", show_default=False)
]
ChainOption = Annotated[
    Path | None,
    typer.Option("--chain", help="PEM intermediates, the issuer first.", show_default=False),
]
Pkcs12Option = Annotated[
    Path | None,
    typer.Option(
        "--pkcs12", help="A PKCS#12 file (.p12, .pfx) instead of PEM.", show_default=False
    ),
]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help="The PKCS#12 (or encrypted key) password, on the file's first line.",
        show_default=False,
    ),
]

#: days left at or under which ``list`` colours an entry (pki/expiry.py's levels)
EXPIRY_STYLES: Mapping[str, str] = {
    "ok": "green",
    "warning": "yellow",
    "critical": "bold red",
    "expired": "bold red reverse",
}


def read_file(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"{option} {path}: {exc.strerror or exc}") from exc


def read_text(path: Path, option: str) -> str:
    try:
        return read_file(path, option).decode("ascii")
    except UnicodeDecodeError:
        raise CliError(f"{option} {path}: not a PEM file (PEM is ASCII text)") from None


def certificate_body(
    cert: Path | None,
    key: Path | None,
    chain: Path | None,
    pkcs12: Path | None,
    password_file: Path | None,
) -> dict[str, Any]:
    """What ``add`` and ``replace`` send: PEM texts, or a base64 PKCS#12 file."""
    body: dict[str, Any] = {}
    if password_file is not None:
        lines = read_file(password_file, "--password-file").decode(errors="replace").splitlines()
        body["password"] = lines[0] if lines else ""
    if pkcs12 is not None:
        if cert is not None or key is not None or chain is not None:
            raise CliError("give --pkcs12, or --cert with --key (and --chain), not both")
        body["pkcs12"] = base64.b64encode(read_file(pkcs12, "--pkcs12")).decode()
        return body
    if cert is None:
        raise CliError("give --cert FILE with --key FILE (and --chain FILE), or --pkcs12 FILE")
    body["cert"] = read_text(cert, "--cert")
    if key is not None:
        body["key"] = read_text(key, "--key")
    if chain is not None:
        body["chain"] = read_text(chain, "--chain")
    return body


def split_list(values: Sequence[str]) -> list[str]:
    """``--dns a,b --dns c`` -> ``["a", "b", "c"]``."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def print_changed(answer: Mapping[str, Any], session: Session, verb: str) -> None:
    if session.json:
        output.print_json(answer)
        return
    out = output.console()
    entry = answer.get("certificate") or {}
    info = entry.get("certificate") or {}
    names = ", ".join([*info.get("dns_names", []), *info.get("ip_addresses", [])])
    out.print(
        output.text(
            f"{verb} {entry.get('name')}: {info.get('subject')}"
            + (f" ({names})" if names else "")
            + f", expires {str(info.get('not_after', ''))[:10]}"
        )
    )
    swapped = answer.get("swapped") or []
    if swapped:
        out.print(output.text(f"served now by {', '.join(swapped)} (no reload)", "green"))
    if answer.get("message"):
        out.print(output.text(answer["message"], "yellow"))


def certificate_command(*, replace: bool) -> Callable[..., None]:
    """``cert add`` and ``cert replace``: the same inputs, another route."""

    def command(
        ctx: typer.Context,
        name: Name,
        cert: CertOption = None,
        key: KeyOption = None,
        chain: ChainOption = None,
        pkcs12: Pkcs12Option = None,
        password_file: PasswordFileOption = None,
        as_json: JsonFlag = False,
    ) -> None:
        session = Session.of(ctx, json=as_json)
        body = certificate_body(cert, key, chain, pkcs12, password_file)
        with session.client() as api:
            if replace:
                answer = api.replace_certificate(name, body)
            else:
                answer = api.add_certificate(name, body)
        print_changed(answer, session, "replaced" if replace else "added")

    return command


app.command("add", help="Add a certificate with its private key (PEM files, or a PKCS#12 file).")(
    certificate_command(replace=False)
)
app.command(
    "replace",
    help="Replace a certificate; services that use it serve the new one without a reload.",
)(certificate_command(replace=True))


@app.command("self-signed")
def self_signed(
    ctx: typer.Context,
    name: Name,
    dns: Annotated[
        list[str],
        typer.Option("--dns", help="DNS names, comma separated (a,b) or repeated."),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    ip: Annotated[
        list[str],
        typer.Option("--ip", help="IP addresses, comma separated or repeated."),
    ] = [],  # noqa: B006
    key_type: Annotated[
        str, typer.Option("--key-type", help="ecdsa-p256, rsa-2048, rsa-3072 or rsa-4096.")
    ] = "ecdsa-p256",
    days: Annotated[int, typer.Option("--days", help="Validity in days (1..3650).")] = 365,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the entry of that name.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Make a self-signed certificate for DNS names and addresses."""
    session = Session.of(ctx, json=as_json)
    body = {
        "name": name,
        "dns": split_list(dns),
        "ips": split_list(ip),
        "key_type": key_type,
        "days": days,
        "replace": replace,
    }
    with session.client() as api:
        answer = api.self_signed(body)
    print_changed(answer, session, "replaced" if replace else "made")


@app.command("acme")
def acme(
    ctx: typer.Context,
    name: Name,
    domain: Annotated[
        list[str],
        typer.Option("--domain", help="A DNS name or IP address; repeat for more."),
    ],
    email: Annotated[str, typer.Option("--email", help="The account's contact address.")],
    directory: Annotated[
        str | None,
        typer.Option(
            "--directory",
            help="The CA's ACME directory URL [default: Let's Encrypt's].",
            show_default=False,
        ),
    ] = None,
    ca_bundle: Annotated[
        Path | None,
        typer.Option(
            "--ca-bundle",
            help="PEM: the CA of the directory's own HTTPS certificate (a private CA).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Request a certificate from an ACME CA over HTTP-01 (HAProxy answers on port 80 of the
    VIPs); the daemon renews it at two thirds of its lifetime."""
    session = Session.of(ctx, json=as_json)
    body: dict[str, Any] = {"name": name, "domains": split_list(domain), "email": email}
    if directory is not None:
        body["directory"] = directory
    if ca_bundle is not None:
        body["ca_bundle"] = read_text(ca_bundle, "--ca-bundle")
    with session.client() as api:
        answer = api.acme(body)
    print_changed(answer, session, "issued")


@app.command("renew")
def renew(ctx: typer.Context, name: Name, as_json: JsonFlag = False) -> None:
    """Renew an ACME certificate now."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.renew(name)
    print_changed(answer, session, "renewed")


@app.command("list")
def list_certificates(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every entry: name, subject, names, issuer, expiry, key type, where it is used."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.certificates()
    if session.json:
        output.print_json(answer)
        return
    grid = output.table(
        "name", "kind", "subject", "names", "issuer", "not after", "days left", "key", "used by"
    )
    for item in answer.get("items") or []:
        info = item.get("certificate") or {}
        style = EXPIRY_STYLES.get(str(item.get("expiry")), "")
        kind = "CA bundle" if item.get("kind") == "ca_bundle" else "certificate"
        if item.get("kind") == "certificate" and not item.get("has_key"):
            kind += " (no key)"
        acme_state = (item.get("acme") or {}).get("state")
        if acme_state is not None:
            kind += f" (acme: {acme_state})"
        grid.add_row(
            output.text(item.get("name"), "bold"),
            output.text(kind),
            output.text(info.get("subject")),
            output.text(", ".join([*info.get("dns_names", []), *info.get("ip_addresses", [])])),
            output.text(info.get("issuer")),
            output.text(output.minute(item.get("not_after"))),
            output.text(info.get("days_left"), style),
            output.text(info.get("key_type")),
            output.text(", ".join(item.get("used_by") or []) or "-"),
        )
    output.console().print(grid)


@app.command("show")
def show(ctx: typer.Context, name: Name, as_json: JsonFlag = False) -> None:
    """One entry in full (never its key)."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        item = api.certificate(name)
    if session.json:
        output.print_json(item)
        return
    info = item.get("certificate") or {}
    rows: list[tuple[str, Any]] = [
        ("name", item.get("name")),
        ("kind", item.get("kind")),
        ("source", item.get("source")),
        ("private key", "stored" if item.get("has_key") else "none"),
        ("used by", ", ".join(item.get("used_by") or []) or "-"),
        ("subject", info.get("subject")),
        ("DNS names", ", ".join(info.get("dns_names") or []) or "-"),
        ("IP addresses", ", ".join(info.get("ip_addresses") or []) or "-"),
        ("issuer", info.get("issuer")),
        ("not before", info.get("not_before")),
        ("not after", info.get("not_after")),
        ("days left", info.get("days_left")),
        ("expiry", item.get("expiry")),
        ("key type", info.get("key_type")),
        ("serial", info.get("serial")),
        ("SHA-256", info.get("fingerprint")),
    ]
    order = item.get("acme")
    if order:
        rows += [
            ("ACME directory", order.get("directory")),
            ("ACME identifiers", ", ".join(order.get("domains") or [])),
            ("ACME state", order.get("state")),
        ]
        if order.get("last_error"):
            rows.append(("ACME error", order.get("last_error")))
        if order.get("next_attempt"):
            rows.append(("next attempt", order.get("next_attempt")))
    for index, member in enumerate(item.get("chain") or [], start=1):
        label = "CA" if item.get("kind") == "ca_bundle" else "chain"
        rows.append(
            (f"{label} {index}", f"{member.get('subject')} (until {member.get('not_after')})")
        )
    output.console().print(output.properties(rows))
    level = str(item.get("expiry"))
    if level != "ok":
        output.console().print(Text(f"expiry: {level}", style=EXPIRY_STYLES.get(level, "")))


@app.command("delete")
def delete(ctx: typer.Context, name: Name, as_json: JsonFlag = False) -> None:
    """Delete an entry (refused while a virtual service uses it)."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.delete_certificate(name)
    if session.json:
        output.print_json(answer)
    else:
        output.console().print(output.text(f"deleted {name}"))


CaFile = Annotated[Path, typer.Option("--file", help="PEM file with one or more CA certificates.")]


@ca_app.command("add")
def ca_add(ctx: typer.Context, name: Name, file: CaFile, as_json: JsonFlag = False) -> None:
    """Add a CA bundle, for client_ca (client certificates) or server_ca (re-encryption)."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.add_ca_bundle(name, read_text(file, "--file"))
    print_changed(answer, session, "added")


@ca_app.command("replace")
def ca_replace(ctx: typer.Context, name: Name, file: CaFile, as_json: JsonFlag = False) -> None:
    """Replace a CA bundle (swapped into the running services without a reload)."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.replace_ca_bundle(name, read_text(file, "--file"))
    print_changed(answer, session, "replaced")
