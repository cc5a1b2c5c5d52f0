"""``bascule detect ADDR:PORT...``: what ``type: auto`` would make of these real servers.

Unlike the other commands it does not ask the daemon: detection needs no state, so the probes
run right here, from the host (and network namespace) the command runs in. That is the
daemon's view when both run on the load balancer; elsewhere a firewall or a route may differ.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated

import typer

from bascule.cli import output
from bascule.cli.errors import CliError
from bascule.cli.session import JsonFlag, Session

if TYPE_CHECKING:
    from bascule.detect import Verdict


def parse_target(text: str) -> tuple[str, int]:
    """``198.18.0.11:80`` or ``[2001:db8::1]:80`` as (address, port); CliError otherwise."""
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    try:
        if not sep or (":" in host and not text.startswith("[")):
            raise ValueError
        address = str(ipaddress.ip_address(host))
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise CliError(
            f"{text!r} is not ADDRESS:PORT (an IP address and a port 1-65535, [IPv6]:PORT for IPv6)"
        ) from None
    return address, port


def detect(
    ctx: typer.Context,
    targets: Annotated[
        list[str],
        typer.Argument(
            metavar="ADDRESS:PORT",
            help="Real servers of one service; the first recognised answer wins.",
            show_default=False,
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Probe real servers and say which service type and check suit them (type: auto).

    The probes run from this host, not through the daemon.
    """
    import asyncio

    from bascule.detect import detect as probe  # the probes and the model: this command only

    session = Session.of(ctx, json=as_json)
    parsed = [parse_target(target) for target in targets]
    verdict = asyncio.run(probe(parsed, port=parsed[0][1]))
    if session.json:
        output.print_json(as_json_value(verdict))
        return
    out = output.console()
    out.print(output.text(verdict.evidence), soft_wrap=True)
    out.print(output.properties([("type", verdict.type.value), ("check", verdict.check.value)]))


def as_json_value(verdict: Verdict) -> dict[str, object]:
    return {
        "type": verdict.type.value,
        "check": verdict.check.value,
        "evidence": verdict.evidence,
        "conclusive": verdict.conclusive,
        "protocol": verdict.protocol.value if verdict.protocol else None,
        "tls": verdict.tls,
    }
