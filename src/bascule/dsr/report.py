"""The verdicts of ``bascule dsr verify``, and the decisions behind them (pure).

Where it sits: dsr/verify.py gathers what the wire and the machine say (ARP answers and
neighbour advertisements, the neighbour table, each test connection's answer) and asks
``judge_neighbours`` and ``describe_answer`` what it means; the ``DsrReport`` it returns goes
through the service layer to the doors (API, CLI), which print its details as they are.
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
    """A host that is not a real server of the service but claims its VIP (ARP, or neighbour
    discovery for IPv6)."""

    mac: str
    addresses: tuple[str, ...]  # what the neighbour table knows it as (may be empty)


@dataclass(frozen=True, kw_only=True)
class DsrReport:
    service: str
    vip: str
    interface: str
    real_servers: tuple[RealServerCheck, ...]
    others: tuple[Responder, ...] = ()
    vip6: str | None = None  # a dual-stack service's IPv6 VIP, checked too

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.real_servers) and not self.others


def _claim(address: str) -> str:
    """How a host claims an address on the segment: ARP for IPv4, neighbour discovery for
    IPv6."""
    return "neighbour solicitations" if ":" in address else "ARP"


def _claimed(vip: str, mac: str) -> str:
    if ":" in vip:
        return (
            f"answers neighbour solicitations for the VIP {vip} (as {mac}): clients would "
            "bypass the load balancer; hold the VIP on lo, not on the interface of the "
            "segment (bascule dsr script)"
        )
    return (
        f"answers ARP for the VIP {vip} (as {mac}): clients would bypass the load balancer; "
        "set arp_ignore=1 and arp_announce=2 (bascule dsr script)"
    )


def judge_neighbours(
    vs: VirtualService,
    answers: Mapping[str, frozenset[str]],
    own_macs: frozenset[str],
    neighbours: Iterable[Neighbour],
) -> tuple[dict[str, tuple[str | None, bool, str]], tuple[Responder, ...]]:
    """Decide from the answers seen to ARP probes (IPv4) and neighbour solicitations (IPv6):
    address -> MACs of the hosts that answered for it.

    Returns real server address -> (its MAC, nobody's VIP claimed, detail), and the other
    hosts that claim a VIP (both of a dual-stack service), named by what the neighbour table
    knows them as. The load balancer's own MACs never count.
    """
    known: dict[str, list[str]] = {}
    for neighbour in neighbours:
        known.setdefault(neighbour.mac, []).append(neighbour.address)
    claims = {vip: set(answers.get(vip, frozenset())) - own_macs for vip in vs.addresses}
    claimants = set().union(*claims.values())
    verdicts: dict[str, tuple[str | None, bool, str]] = {}
    server_macs: set[str] = set()
    for rs in vs.real_servers:
        macs = sorted(answers.get(rs.address, frozenset()))
        if not macs:
            answer = "neighbour advertisement" if ":" in rs.address else "ARP answer"
            verdicts[rs.address] = (
                None,
                False,
                f"no {answer} for {rs.address} itself: is it up and on this segment?",
            )
            continue
        mac = macs[0]
        server_macs.update(macs)
        conflict = f" ({len(macs)} hosts answer for {rs.address}: {', '.join(macs)})"
        note = conflict if len(macs) > 1 else ""
        claimed = [vip for vip, macs_of in claims.items() if macs_of & set(macs)]
        if claimed:
            detail = "; ".join(_claimed(vip, mac) for vip in claimed)
            verdicts[rs.address] = (mac, False, detail + note)
        else:
            quiet = " nor ".join(f"{_claim(vip)} for the VIP {vip}" for vip in vs.addresses)
            verdicts[rs.address] = (mac, True, f"does not answer {quiet}" + note)
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
