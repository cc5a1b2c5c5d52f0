"""The verdicts of ``bascule dsr verify``, and the decisions behind them (pure).

Where it sits: dsr/verify.py gathers what the wire and the machine say (ARP answers, the
neighbour table, each test connection's answer) and asks ``judge_arp`` and
``describe_answer`` what it means; the ``DsrReport`` it returns goes through the service
layer to the doors (API, CLI), which print its details as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bascule.dsr.probe import Answer, VipProbe
from bascule.net.addresses import host_port
from bascule.net.iproute import Neighbour

if TYPE_CHECKING:
    from bascule.model import VirtualService


@dataclass(frozen=True, kw_only=True)
class RealServerCheck:
    """The verdicts on one real server; a detail says what was seen and what to do."""

    key: str
    address: str
    mac: str | None
    arp_ok: bool
    arp_detail: str
    connect_ok: bool
    connect_detail: str

    @property
    def ok(self) -> bool:
        return self.arp_ok and self.connect_ok


@dataclass(frozen=True, kw_only=True)
class Responder:
    """A host that is not a real server of the service but answers ARP for its VIP."""

    mac: str
    addresses: tuple[str, ...]  # what the neighbour table knows it as (may be empty)


@dataclass(frozen=True, kw_only=True)
class DsrReport:
    service: str
    vip: str
    interface: str
    real_servers: tuple[RealServerCheck, ...]
    others: tuple[Responder, ...] = ()

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.real_servers) and not self.others


def judge_arp(
    vs: VirtualService,
    answers: Mapping[str, frozenset[str]],
    own_macs: frozenset[str],
    neighbours: Iterable[Neighbour],
) -> tuple[dict[str, tuple[str | None, bool, str]], tuple[Responder, ...]]:
    """Decide from the ARP answers seen: address -> MAC list of the hosts that answered.

    Returns real server address -> (its MAC, arp_ok, detail), and the other hosts that claim
    the VIP, named by what the neighbour table knows them as. The load balancer's own MACs
    never count.
    """
    known: dict[str, list[str]] = {}
    for neighbour in neighbours:
        known.setdefault(neighbour.mac, []).append(neighbour.address)
    claimants = set(answers.get(vs.address, frozenset())) - own_macs
    verdicts: dict[str, tuple[str | None, bool, str]] = {}
    server_macs: set[str] = set()
    for rs in vs.real_servers:
        macs = sorted(answers.get(rs.address, frozenset()))
        if not macs:
            verdicts[rs.address] = (
                None,
                False,
                f"no ARP answer for {rs.address} itself: is it up and on this segment?",
            )
            continue
        mac = macs[0]
        server_macs.update(macs)
        conflict = f" ({len(macs)} hosts answer for {rs.address}: {', '.join(macs)})"
        note = conflict if len(macs) > 1 else ""
        if claimants & set(macs):
            verdicts[rs.address] = (
                mac,
                False,
                f"answers ARP for the VIP {vs.address} (as {mac}): clients would bypass the "
                "load balancer; set arp_ignore=1 and arp_announce=2 (bascule dsr script)" + note,
            )
        else:
            verdicts[rs.address] = (
                mac,
                True,
                f"does not answer ARP for the VIP {vs.address}" + note,
            )
    others = tuple(
        Responder(mac=mac, addresses=tuple(known.get(mac, ())))
        for mac in sorted(claimants - server_macs)
    )
    return verdicts, others


def describe_answer(answer: tuple[Answer, str] | None, probe: VipProbe, timeout: float) -> str:
    target = host_port(probe.vip, probe.port) if probe.tcp else probe.vip
    what = "a SYN" if probe.tcp else "an ICMP echo"
    if answer is None:
        return (
            f"no answer to {what} for {target} within {timeout:g} s: the server does not "
            "accept packets for the VIP (is the VIP on its loopback?) or a firewall drops them"
        )
    verdict, mac = answer
    if verdict is Answer.accepted:
        return f"SYN-ACK from {target}" if probe.tcp else f"echo reply from {target}"
    if verdict is Answer.refused:
        return (
            f"RST from {target}: the server holds the VIP but nothing listens on port "
            f"{probe.port} (or a firewall rejects it)"
        )
    return f"answered from {mac}, not from the server's own MAC {probe.server_mac}"
