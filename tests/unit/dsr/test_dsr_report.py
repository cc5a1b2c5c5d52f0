"""dsr/report.py: the verdicts of ``dsr verify`` on what was seen (pure)."""

from __future__ import annotations

from bascule.dsr.probe import Answer, VipProbe
from bascule.dsr.report import (
    DsrReport,
    RealServerCheck,
    Responder,
    describe_answer,
    judge_neighbours,
)
from bascule.model import VirtualService, parse_document
from bascule.net.iproute import Neighbour

LB = "02:00:00:00:00:02"
RS1, RS2, STRANGER = "02:00:00:00:00:0b", "02:00:00:00:00:0c", "02:00:00:00:00:63"


def service() -> VirtualService:
    document = {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "mode": "l4",
        "forwarding": "dsr",
        "real_servers": [
            {"address": "198.18.0.11", "port": 80},
            {"address": "198.18.0.12", "port": 80},
            {"address": "198.18.0.13", "port": 80},
        ],
    }
    return parse_document({"virtual_services": [document]}).virtual_services[0]


def test_judge_neighbours_names_servers_and_strangers_that_claim_the_vip() -> None:
    answers = {
        "198.18.0.100": frozenset({LB, RS2, STRANGER}),
        "198.18.0.11": frozenset({RS1}),
        "198.18.0.12": frozenset({RS2}),
    }
    neighbours = [
        Neighbour(address="198.18.0.99", mac=STRANGER),
        Neighbour(address="198.18.0.11", mac=RS1),
    ]

    verdicts, others = judge_neighbours(service(), answers, frozenset({LB}), neighbours)

    assert verdicts["198.18.0.11"] == (
        RS1,
        True,
        "does not answer ARP for the VIP 198.18.0.100",
    )
    mac, ok, detail = verdicts["198.18.0.12"]
    assert (mac, ok) == (RS2, False)
    assert detail.startswith(f"answers ARP for the VIP 198.18.0.100 (as {RS2})")
    assert "arp_ignore=1 and arp_announce=2" in detail
    assert verdicts["198.18.0.13"] == (
        None,
        False,
        "no ARP answer for 198.18.0.13 itself: is it up and on this segment?",
    )
    assert others == (Responder(mac=STRANGER, addresses=("198.18.0.99",)),)


def test_judge_neighbours_reports_an_address_conflict() -> None:
    answers = {"198.18.0.11": frozenset({RS1, STRANGER})}
    verdicts, others = judge_neighbours(service(), answers, frozenset({LB}), ())

    mac, ok, detail = verdicts["198.18.0.11"]
    assert (mac, ok) == (RS1, True)
    assert detail.endswith(f"(2 hosts answer for 198.18.0.11: {RS1}, {STRANGER})")
    assert others == ()


def test_describe_answer() -> None:
    probe = VipProbe(
        lb_mac=LB,
        server_mac=RS1,
        source="198.18.0.2",
        source_port=40000,
        vip="198.18.0.100",
        port=80,
        isn=1,
    )
    assert describe_answer((Answer.accepted, RS1), probe, 1.0) == "SYN-ACK from 198.18.0.100:80"
    assert describe_answer((Answer.refused, RS1), probe, 1.0).startswith(
        "RST from 198.18.0.100:80: the server holds the VIP but nothing listens on port 80"
    )
    assert describe_answer((Answer.foreign, STRANGER), probe, 1.0) == (
        f"answered from {STRANGER}, not from the server's own MAC {RS1}"
    )
    assert describe_answer(None, probe, 1.5).startswith(
        "no answer to a SYN for 198.18.0.100:80 within 1.5 s"
    )


def test_report_is_ok_only_when_every_check_passes_and_nobody_else_claims_the_vip() -> None:
    passed = RealServerCheck(
        key="198.18.0.11:80",
        address="198.18.0.11",
        mac=RS1,
        arp_ok=True,
        arp_detail="",
        connect_ok=True,
        connect_detail="",
    )
    report = DsrReport(service="web", vip="198.18.0.100", interface="eth0", real_servers=(passed,))
    assert report.ok
    stranger = Responder(mac=STRANGER, addresses=())
    assert not DsrReport(
        service="web",
        vip="198.18.0.100",
        interface="eth0",
        real_servers=(passed,),
        others=(stranger,),
    ).ok
    failed = RealServerCheck(
        key="198.18.0.12:80",
        address="198.18.0.12",
        mac=RS2,
        arp_ok=True,
        arp_detail="",
        connect_ok=False,
        connect_detail="",
    )
    assert not failed.ok
    assert not DsrReport(
        service="web", vip="198.18.0.100", interface="eth0", real_servers=(passed, failed)
    ).ok
