"""``bascule rs ...``: real servers of a virtual service, named ``ADDRESS:PORT``.

``enable``, ``disable`` and ``drain`` are runtime changes for the engine (no reload); they are
still recorded as revisions so the history says who took a server out and when.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bascule.cli import output
from bascule.cli.session import JsonFlag, Session
from bascule.cli.vs import Assignments, parse_assignments
from bascule.net.addresses import host_port

app = typer.Typer(
    help="Real servers: add, set, delete, enable, disable, drain.", no_args_is_help=True
)

Service = Annotated[str, typer.Argument(help="The virtual service.", show_default=False)]
Server = Annotated[
    str,
    typer.Argument(
        help="ADDRESS:PORT, e.g. 198.18.0.4:80 or [2001:db8::1]:80.",
        metavar="ADDRESS:PORT",
        show_default=False,
    ),
]


def parse_server(value: str) -> tuple[str, int]:
    """``198.18.0.4:80`` or ``[2001:db8::1]:80`` as (address, port); a usage error otherwise."""
    host, _, port = value.rpartition(":")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit() or "[" in host or "]" in host:
        raise typer.BadParameter(
            f"{value!r} is not ADDRESS:PORT (e.g. 198.18.0.4:80 or [2001:db8::1]:80)"
        )
    return host, int(port)


def key_of(value: str) -> str:
    return host_port(*parse_server(value))


@app.command()
def add(
    ctx: typer.Context,
    service: Service,
    server: Server,
    weight: Annotated[int | None, typer.Option("--weight", help="1..65535.")] = None,
    max_connections: Annotated[
        int | None, typer.Option("--max-connections", help="0 is unlimited.")
    ] = None,
    critical: Annotated[
        bool, typer.Option("--critical", help="The service is down while this one is down.")
    ] = False,
    state: Annotated[
        str | None, typer.Option("--state", help="enabled, disabled or drain.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a real server to a virtual service."""
    session = Session.of(ctx, json=as_json)
    address, port = parse_server(server)
    document: dict[str, Any] = {"address": address, "port": port}
    optional = {"weight": weight, "max_connections": max_connections, "state": state}
    document.update({k: v for k, v in optional.items() if v is not None})
    if critical:
        document["critical"] = True
    with session.client() as api:
        result = api.add_real_server(service, document)
    output.print_change(result, as_json=session.json)


@app.command("set")
def set_(
    ctx: typer.Context,
    service: Service,
    server: Server,
    assignments: Assignments,
    as_json: JsonFlag = False,
) -> None:
    """Change fields of a real server: `rs set web 198.18.0.4:80 weight=500`."""
    session = Session.of(ctx, json=as_json)
    key = key_of(server)
    changes = parse_assignments(assignments)
    with session.client() as api:
        result = api.update_real_server(service, key, changes)
    output.print_change(result, as_json=session.json)


@app.command()
def delete(ctx: typer.Context, service: Service, server: Server, as_json: JsonFlag = False) -> None:
    """Remove a real server from a virtual service."""
    session = Session.of(ctx, json=as_json)
    key = key_of(server)
    with session.client() as api:
        result = api.delete_real_server(service, key)
    output.print_change(result, as_json=session.json)


OptionalService = Annotated[
    str | None,
    typer.Argument(help="The virtual service (or use --address / --server).", show_default=False),
]
OptionalServer = Annotated[
    str | None,
    typer.Argument(
        help="ADDRESS:PORT, e.g. 198.18.0.4:80 or [2001:db8::1]:80.",
        metavar="[ADDRESS:PORT]",
        show_default=False,
    ),
]
Address = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Every real server at this address, in every service (one revision).",
        show_default=False,
    ),
]
Servers = Annotated[
    list[str] | None,
    typer.Option(
        "--server",
        help="SERVICE/ADDRESS:PORT, repeatable: these servers, in one revision.",
        show_default=False,
    ),
]


def parse_pool_server(value: str) -> tuple[str, str]:
    """``web/198.18.0.4:80`` (or ``site/api/...`` for a sub-service's) as (pool, key)."""
    pool, _, server = value.rpartition("/")
    if not pool:
        raise typer.BadParameter(f"{value!r} is not SERVICE/ADDRESS:PORT (e.g. web/198.18.0.4:80)")
    return pool, key_of(server)


def _state_change(
    ctx: typer.Context,
    verb: str,
    as_json: bool,
    service: str | None,
    server: str | None,
    address: str | None,
    servers: list[str] | None,
) -> None:
    session = Session.of(ctx, json=as_json)
    chosen = [parse_pool_server(value) for value in servers or ()]
    if service is not None or server is not None:
        if service is None or server is None:
            raise typer.BadParameter("give both SERVICE and ADDRESS:PORT")
        chosen.insert(0, (service, key_of(server)))
    if not chosen and address is None:
        raise typer.BadParameter("give SERVICE ADDRESS:PORT, --address or --server")
    with session.client() as api:
        if address is None and len(chosen) == 1:
            result = api.set_real_server_state(chosen[0][0], chosen[0][1], verb)
        else:
            result = api.set_real_servers_state(verb, address=address, servers=chosen)
    output.print_change(result, as_json=session.json)


@app.command()
def enable(
    ctx: typer.Context,
    service: OptionalService = None,
    server: OptionalServer = None,
    address: Address = None,
    servers: Servers = None,
    as_json: JsonFlag = False,
) -> None:
    """Put a real server back in service (or all at --address, or each --server)."""
    _state_change(ctx, "enable", as_json, service, server, address, servers)


@app.command()
def disable(
    ctx: typer.Context,
    service: OptionalService = None,
    server: OptionalServer = None,
    address: Address = None,
    servers: Servers = None,
    as_json: JsonFlag = False,
) -> None:
    """Take a real server out of service now (or all at --address, or each --server)."""
    _state_change(ctx, "disable", as_json, service, server, address, servers)


@app.command()
def drain(
    ctx: typer.Context,
    service: OptionalService = None,
    server: OptionalServer = None,
    address: Address = None,
    servers: Servers = None,
    as_json: JsonFlag = False,
) -> None:
    """Let a real server's connections finish while new ones go elsewhere (or all at
    --address, or each --server, in one revision)."""
    _state_change(ctx, "drain", as_json, service, server, address, servers)
