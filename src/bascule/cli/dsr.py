"""``bascule dsr ...``: help for the real servers of a Direct Server Return service.

``script`` prints the commands each real server needs (Linux or Windows); ``verify`` has the
daemon check every real server on the wire and exits 1 when any check fails, so it can gate a
deployment script.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.text import Text

from bascule.cli import output
from bascule.cli.session import JsonFlag, Session
from bascule.dsr.target import TargetOs

app = typer.Typer(
    help="Direct Server Return: set up real servers and check them.", no_args_is_help=True
)

Service = Annotated[
    str, typer.Argument(help="The virtual service (forwarding: dsr).", show_default=False)
]


@app.command()
def script(
    ctx: typer.Context,
    service: Service,
    target: Annotated[
        TargetOs, typer.Option("--os", help="The real servers' operating system.")
    ] = TargetOs.linux,
    as_json: JsonFlag = False,
) -> None:
    """Print the commands each real server of a DSR service needs."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.dsr_script(service, target.value)
    if session.json:
        output.print_json(answer)
    else:
        sys.stdout.write(str(answer.get("script", "")))


@app.command()
def verify(ctx: typer.Context, service: Service, as_json: JsonFlag = False) -> None:
    """Check each real server: it must not answer ARP for the VIP, and must accept a test
    connection through the VIP. Exits 1 when a check fails."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        report = api.dsr_verify(service)
    if session.json:
        output.print_json(report)
    else:
        print_report(report)
    if not report.get("ok"):
        raise typer.Exit(1)


def _verdict(ok: Any) -> Text:
    return Text("ok", style="green") if ok else Text("FAIL", style="bold red")


def print_report(report: Mapping[str, Any]) -> None:
    out = output.console()
    vips = report.get("vip") if not report.get("vip6") else f"{report['vip']} and {report['vip6']}"
    title = f"DSR verify {report.get('service')}: VIP {vips} on {report.get('interface') or '?'}"
    grid = output.table("real server", "mac", "arp", "", "connect", "", title=title)
    for check in report.get("real_servers") or []:
        grid.add_row(
            output.text(check.get("key")),
            output.text(check.get("mac")),
            _verdict(check.get("arp_ok")),
            output.text(check.get("arp_detail")),
            _verdict(check.get("connect_ok")),
            output.text(check.get("connect_detail")),
        )
    out.print(grid)
    for other in report.get("others") or []:
        names = ", ".join(other.get("addresses") or []) or "an unknown host"
        out.print(
            Text(
                f"{names} ({other.get('mac')}) is not a real server of this service but "
                "answers ARP for its VIP: clients may bypass the load balancer",
                style="red",
            ),
            soft_wrap=True,
        )
    verdict = "all checks passed" if report.get("ok") else "some checks failed"
    out.print(Text(verdict, style="green" if report.get("ok") else "bold red"))
