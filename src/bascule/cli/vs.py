"""``bascule vs ...``: virtual services, one at a time.

Each command is one API call; the daemon turns it into an edit of the whole document and
validates the result exactly as ``apply`` would, so a bad value is reported with its full path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import typer

from bascule.cli import output
from bascule.cli.session import JsonFlag, Session
from bascule.net.addresses import host_port

app = typer.Typer(
    help="Virtual services: list, show, add, set (a sub-service too), set-rule, delete.",
    no_args_is_help=True,
)

Assignments = Annotated[
    list[str],
    typer.Argument(
        help="key=value changes; dotted keys reach nested fields (check.interval=5); "
        "values are YAML scalars (5, true, null).",
        show_default=False,
    ),
]


def parse_assignments(assignments: Iterable[str]) -> dict[str, Any]:
    """``["check.interval=5", "enabled=false"]`` -> ``{"check": {"interval": 5}, ...}``."""
    changes: dict[str, Any] = {}
    for assignment in assignments:
        key, equals, raw = assignment.partition("=")
        parts = key.strip().split(".")
        if not equals or not all(parts):
            raise typer.BadParameter(
                f"{assignment!r} is not key=value (for example check.interval=5)"
            )
        target = changes
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise typer.BadParameter(f"{key!r} sets a field inside {part!r}, set above")
            target = child
        target[parts[-1]] = scalar(raw)
    return changes


def scalar(raw: str) -> Any:
    """A value as YAML reads it (``5`` an int, ``true`` a bool, ``null``); else the text."""
    import yaml  # only the commands that take assignments pay for it

    from bascule import safeyaml

    try:
        return safeyaml.load(raw) if raw.strip() else None
    except yaml.YAMLError:
        return raw


def port_spec(value: str) -> int | str:
    """``8080`` as a number, a range such as ``9000-9010`` as text (the document's form)."""
    return int(value) if value.isdigit() else value


def ports(service: Mapping[str, Any]) -> str:
    return ",".join(str(p) for p in [service.get("port"), *(service.get("extra_ports") or ())])


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the virtual services."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.list_virtual_services()
    if session.json:
        output.print_json(answer)
        return
    items = answer.get("items") or []
    if not items:
        output.console().print("no virtual services")
        return
    grid = output.table(
        "name",
        "address",
        "ports",
        "protocol",
        "type",
        "mode",
        "scheduler",
        "check",
        "real servers",
        "enabled",
    )
    for vs in items:
        grid.add_row(
            output.text(vs.get("name"), "bold"),
            output.text(vs.get("address")),
            output.text(ports(vs)),
            output.text(vs.get("protocol")),
            output.text(vs.get("type")),
            output.text(vs.get("mode")),
            output.text(vs.get("scheduler")),
            output.text((vs.get("check") or {}).get("type")),
            output.text(len(vs.get("real_servers") or ())),
            output.text(vs.get("enabled")),
        )
    output.console().print(grid)


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The virtual service.")],
    as_json: JsonFlag = False,
) -> None:
    """Show a virtual service's properties, its rules, real servers and sub-services."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        service = api.get_virtual_service(name)
    if session.json:
        output.print_json(service)
        return
    out = output.console()
    nested = ("real_servers", "sub_services", "rules")
    fields = {k: v for k, v in service.items() if k not in nested}
    out.print(output.properties(output.flatten(fields)))
    rules = service.get("rules") or []
    if rules:
        out.print()
        out.print(_rules_table(rules))
    out.print()
    servers = service.get("real_servers") or []
    if not servers:
        out.print("no real servers")
    else:
        out.print(_servers_table(servers, "real servers"))
    for sub in service.get("sub_services") or []:
        out.print()
        own = {k: v for k, v in sub.items() if k not in ("name", "real_servers") and v is not None}
        title = f"sub-service {name}/{sub.get('name')}"
        if own:
            out.print(output.properties(output.flatten(own)))
        out.print(_servers_table(sub.get("real_servers") or [], title))


def _rules_table(rules: list[dict[str, Any]]) -> Any:
    """The content rules in order (first match wins): what each matches and does."""
    grid = output.table("#", "rule", "match", "action", title="rules (first match wins)")
    for number, rule in enumerate(rules, 1):
        match = dict(rule.get("match") or {})
        negate = match.pop("negate", False)
        words = ", ".join(f"{k}={v}" for k, v in output.flatten(match) if v is not None)
        action = ", ".join(
            f"{k}={v}" for k, v in output.flatten(rule.get("action") or {}) if v is not None
        )
        if rule.get("rewrite_path"):
            action += f", rewrite_path={rule['rewrite_path']}"
        rate = ((rule.get("limits") or {}).get("per_client") or {}).get("requests_per_second")
        if rate is not None:
            action += f", limit {rate} req/s per client"
        grid.add_row(
            output.text(number),
            output.text(rule.get("name")),
            output.text(f"not ({words})" if negate else words),
            output.text(action),
        )
    return grid


def _servers_table(servers: list[dict[str, Any]], title: str) -> Any:
    grid = output.table(
        "real server", "weight", "state", "max connections", "critical", title=title
    )
    for rs in servers:
        grid.add_row(
            output.text(host_port(str(rs.get("address")), str(rs.get("port")))),
            output.text(rs.get("weight")),
            output.status_text(str(rs.get("state"))),
            output.text(rs.get("max_connections")),
            output.text(rs.get("critical")),
        )
    return grid


@app.command()
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique name: a-z, 0-9 and -, up to 63.")],
    address: Annotated[str, typer.Option("--address", help="The VIP (IPv4 or IPv6).")],
    port: Annotated[int, typer.Option("--port", help="The main port.")],
    address6: Annotated[
        str | None,
        typer.Option("--address6", help="Dual-stack: the IPv6 VIP (--address is the IPv4 one)."),
    ] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", help="tcp or udp.")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="http or generic.")] = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="round_robin, least_connection...")
    ] = None,
    check: Annotated[
        str | None, typer.Option("--check", help="Health check type: tcp, http, none...")
    ] = None,
    extra_port: Annotated[
        list[str] | None,
        typer.Option("--extra-port", help="Another port or range (9000-9010); repeatable."),
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it disabled.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add a virtual service (no real servers yet: add them with `rs add`)."""
    session = Session.of(ctx, json=as_json)
    service: dict[str, Any] = {"name": name, "address": address, "port": port}
    optional = {
        "address6": address6,
        "protocol": protocol,
        "type": type_,
        "scheduler": scheduler,
    }
    service.update({k: v for k, v in optional.items() if v is not None})
    if extra_port:
        service["extra_ports"] = [port_spec(p) for p in extra_port]
    if check is not None:
        service["check"] = {"type": check}
    if disabled:
        service["enabled"] = False
    with session.client() as api:
        result = api.add_virtual_service(service)
    output.print_change(result, as_json=session.json)


@app.command("set")
def set_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The virtual service, or SERVICE/SUB-SERVICE.")],
    assignments: Assignments,
    as_json: JsonFlag = False,
) -> None:
    """Change fields of a virtual service: `vs set web scheduler=least_connection`; of a
    sub-service with SERVICE/SUB: `vs set site/api limits.per_client.requests_per_second=20`."""
    session = Session.of(ctx, json=as_json)
    changes = parse_assignments(assignments)
    with session.client() as api:
        if "/" in name:
            result = api.update_sub_service(name, changes)
        else:
            result = api.update_virtual_service(name, changes)
    output.print_change(result, as_json=session.json)


@app.command("set-rule")
def set_rule(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The virtual service.")],
    rule: Annotated[str, typer.Argument(help="The content rule.")],
    assignments: Assignments,
    as_json: JsonFlag = False,
) -> None:
    """Change fields of a content rule: `vs set-rule site login
    limits.per_client.requests_per_second=5` (`limits=null` removes its limits)."""
    session = Session.of(ctx, json=as_json)
    changes = parse_assignments(assignments)
    with session.client() as api:
        result = api.update_rule(name, rule, changes)
    output.print_change(result, as_json=session.json)


@app.command()
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The virtual service.")],
    as_json: JsonFlag = False,
) -> None:
    """Delete a virtual service and its real servers."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        result = api.delete_virtual_service(name)
    output.print_change(result, as_json=session.json)
