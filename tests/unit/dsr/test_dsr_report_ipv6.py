"""``judge_neighbours`` for IPv6 and dual-stack DSR services: neighbour discovery in the words
of the verdicts, and a VIP of either family claimed by a server or a stranger."""

from __future__ import annotations

from bascule.dsr.report import Responder, judge_neighbours
from bascule.model import VirtualService, parse_document
from bascule.net.iproute import Neighbour

LB, RS1, RS2, STRANGER = (f"02:00:00:00:00:{n}" for n in ("02", "11", "12", "99"))


def dual_stack() -> VirtualService:
    document = {
        "name": "web",
        "address": "198.18.0.100",
        "address6": "2001:2::100",
        "port": 80,
        "mode": "l4",
        "forwarding": "dsr",
        "real_servers": [
            {"address": "2001:2::11", "port": 80},
            {"address": "198.18.0.12", "port": 80},
            {"address": "2001:2::13", "port": 80},
        ],
    }
    return parse_document({"virtual_services": [document]}).virtual_services[0]


def test_quiet_servers_of_either_family_pass() -> None:
    answers = {
        "198.18.0.100": frozenset({LB}),
        "2001:2::100": frozenset({LB}),
        "2001:2::11": frozenset({RS1}),
        "198.18.0.12": frozenset({RS2}),
    }
    verdicts, others = judge_neighbours(dual_stack(), answers, frozenset({LB}), ())
    assert verdicts["2001:2::11"] == (
        RS1,
        True,
        "does not answer ARP for the VIP 198.18.0.100 nor neighbour solicitations for the "
        "VIP 2001:2::100",
    )
    assert verdicts["198.18.0.12"][:2] == (RS2, True)
    assert verdicts["2001:2::13"] == (
        None,
        False,
        "no neighbour advertisement for 2001:2::13 itself: is it up and on this segment?",
    )
    assert others == ()


def test_a_server_or_a_stranger_claiming_the_ipv6_vip_is_named() -> None:
    answers = {
        "2001:2::100": frozenset({LB, RS1, STRANGER}),
        "2001:2::11": frozenset({RS1}),
        "198.18.0.12": frozenset({RS2}),
    }
    neighbours = [Neighbour(address="2001:2::99", mac=STRANGER)]
    verdicts, others = judge_neighbours(dual_stack(), answers, frozenset({LB}), neighbours)
    mac, ok, detail = verdicts["2001:2::11"]
    assert (mac, ok) == (RS1, False)
    assert detail == (
        f"answers neighbour solicitations for the VIP 2001:2::100 (as {RS1}): clients would "
        "bypass the load balancer; hold the VIP on lo, not on the interface of the segment "
        "(bascule dsr script)"
    )
    assert verdicts["198.18.0.12"][1] is True
    assert others == (Responder(mac=STRANGER, addresses=("2001:2::99",)),)
