"""engines/nftables/shell.py with a fake Runner: parsers and the commands it sends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from bascule.engines.nftables.shell import (
    NftablesShell,
    active_connections,
    parse_conntrack,
    parse_counters,
)
from bascule.engines.nftables.view import L4Inputs, build_ruleset
from bascule.errors import ApplyFailed, EngineError, EngineRejected
from bascule.model import Configuration
from bascule.net.shell import Completed

PROC = """\
ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.0.10 dst=198.18.0.100 sport=40000 \
dport=80 src=198.18.0.11 dst=198.18.0.10 sport=80 dport=40000 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 119 TIME_WAIT src=198.18.0.10 dst=198.18.0.100 sport=40001 dport=80 \
src=198.18.0.12 dst=198.18.0.10 sport=80 dport=40001 [ASSURED] mark=0 zone=0 use=2
ipv4     2 udp      17 29 src=198.18.0.10 dst=198.18.0.100 sport=5000 dport=53 \
src=198.18.0.12 dst=198.18.0.10 sport=53 dport=5000 mark=0 zone=0 use=2
ipv4     2 icmp     1 29 src=198.18.0.10 dst=198.18.0.11 type=8 code=0 id=1 src=198.18.0.11 \
dst=198.18.0.10 type=0 code=0 id=1 mark=0 use=1
"""


class FakeRunner:
    def __init__(self, answers: dict[str, Completed]) -> None:
        self.answers = answers
        self.calls: list[tuple[list[str], str | None]] = []

    async def __call__(self, argv: Sequence[str], stdin: str | None) -> Completed:
        self.calls.append((list(argv), stdin))
        for prefix, answer in self.answers.items():
            if " ".join(argv).startswith(prefix):
                return answer
        return Completed(returncode=0, stdout="", stderr="")


def config(**fields: object) -> Configuration:
    service = {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "mode": "l4",
        "real_servers": [
            {"address": "198.18.0.11", "port": 80},
            {"address": "198.18.0.12", "port": 80},
        ],
        **fields,
    }
    return Configuration.model_validate({"virtual_services": [service]})


def test_parse_conntrack_and_count_active() -> None:
    connections = parse_conntrack(PROC)
    assert [c.protocol for c in connections] == ["tcp", "tcp", "udp"]
    assert connections[0].state == "ESTABLISHED"
    assert connections[0].reply_source == "198.18.0.11"
    tcp = active_connections(connections, config().virtual_services)
    assert tcp == {("web", "198.18.0.11:80"): 1, ("web", "198.18.0.12:80"): 0}
    udp = config(protocol="udp", port=53)
    assert active_connections(connections, udp.virtual_services)[("web", "198.18.0.12:80")] == 1


def test_parse_counters_keeps_our_tables_only() -> None:
    listing = {
        "nftables": [
            {
                "counter": {
                    "family": "ip",
                    "table": "bascule",
                    "name": "in/web",
                    "packets": 3,
                    "bytes": 180,
                }
            },
            {"counter": {"family": "ip", "table": "other", "name": "x", "packets": 1, "bytes": 1}},
        ]
    }
    values = parse_counters(listing)
    assert list(values) == [("ip", "in/web")]
    assert values[("ip", "in/web")].bytes == 180


def test_mac_of_reads_the_neighbour_table_and_pings_once_when_it_is_unknown() -> None:
    text = json.dumps(
        [
            {
                "dst": "198.18.0.11",
                "dev": "eth0",
                "lladdr": "02:aa:00:00:00:11",
                "state": ["REACHABLE"],
            },
            {"dst": "198.18.0.12", "dev": "eth0", "state": ["FAILED"]},
        ]
    )
    runner = FakeRunner({"ip -j neigh": Completed(returncode=0, stdout=text, stderr="")})
    engine = NftablesShell(runner=runner)

    assert asyncio.run(engine.mac_of("198.18.0.11", "eth0")) == "02:aa:00:00:00:11"
    assert asyncio.run(engine.mac_of("198.18.0.12", "eth0")) is None
    assert [argv for argv, _ in runner.calls] == [
        ["ip", "-j", "neigh", "show", "to", "198.18.0.11", "dev", "eth0"],
        ["ip", "-j", "neigh", "show", "to", "198.18.0.12", "dev", "eth0"],
        ["ping", "-c", "1", "-W", "1", "-I", "eth0", "198.18.0.12"],
        ["ip", "-j", "neigh", "show", "to", "198.18.0.12", "dev", "eth0"],
    ]


def test_interface_mac_and_route_come_from_ip() -> None:
    link = '[{"ifname": "eth0", "link_type": "ether", "address": "02:00:00:00:00:02"}]'
    route = '[{"dst": "198.18.0.11", "dev": "eth0", "prefsrc": "198.18.0.2"}]'
    runner = FakeRunner(
        {
            "ip -j link show dev eth0": Completed(returncode=0, stdout=link, stderr=""),
            "ip -j link show dev eth9": Completed(returncode=1, stdout="", stderr="no eth9"),
            "ip -j route get 198.18.0.11": Completed(returncode=0, stdout=route, stderr=""),
            "ip -j route get": Completed(returncode=2, stdout="", stderr="unreachable"),
        }
    )
    engine = NftablesShell(runner=runner)

    assert asyncio.run(engine.interface_mac("eth0")) == "02:00:00:00:00:02"
    with pytest.raises(EngineError, match=r"no MAC address for eth9: .*: no eth9"):
        asyncio.run(engine.interface_mac("eth9"))
    found = asyncio.run(engine.route_to("198.18.0.11"))
    assert found is not None and (found.interface, found.gateway) == ("eth0", None)
    assert asyncio.run(engine.route_to("10.0.0.1")) is None


def test_apply_checks_then_applies_one_transaction() -> None:
    runner = FakeRunner({"nft -j list": Completed(returncode=1, stdout="", stderr="no table")})
    engine = NftablesShell(runner=runner)
    ruleset = build_ruleset(config(), L4Inputs())
    sent = asyncio.run(engine.apply(ruleset))
    nft = [argv for argv, _ in runner.calls if "-f" in argv]
    # first the text prelude (checked, then run: the empty numgen map), then the transaction
    assert nft == [
        ["nft", "-c", "-f", "-"],
        ["nft", "-f", "-"],
        ["nft", "-c", "-j", "-f", "-"],
        ["nft", "-j", "-f", "-"],
    ]
    [text] = [stdin for argv, stdin in runner.calls if argv == ["nft", "-f", "-"]]
    assert "typeof numgen" in (text or "")
    assert json.loads(runner.calls[-1][1] or "") == sent


def test_refusal_and_failure_are_told_apart() -> None:
    ruleset = build_ruleset(config(), L4Inputs())
    refused = FakeRunner({"nft -c": Completed(returncode=1, stdout="", stderr="Error: bad")})
    with pytest.raises(EngineRejected, match="bad"):
        asyncio.run(NftablesShell(runner=refused).apply(ruleset))
    assert not [argv for argv, _ in refused.calls if argv[:3] == ["nft", "-j", "-f"]]
    failing = FakeRunner({"nft -j -f": Completed(returncode=1, stdout="", stderr="Error: busy")})
    with pytest.raises(ApplyFailed, match="busy"):
        asyncio.run(NftablesShell(runner=failing).apply(ruleset))


def test_flush_connections_names_the_flows() -> None:
    runner = FakeRunner(
        {"conntrack": Completed(returncode=1, stdout="", stderr="0 flow entries have been deleted")}
    )
    asyncio.run(NftablesShell(runner=runner).flush_connections("198.18.0.100", 80, "198.18.0.11"))
    assert runner.calls[0][0] == [
        "conntrack",
        "-D",
        "-p",
        "tcp",
        "--orig-dst",
        "198.18.0.100",
        "--dport",
        "80",
        "--reply-src",
        "198.18.0.11",
    ]


def test_check_ruleset_undoes_its_prelude_when_nft_refuses() -> None:
    answers = {
        "nft -j list": Completed(returncode=1, stdout="", stderr="no table"),
        "nft -c -j": Completed(returncode=1, stdout="", stderr="Error: refused"),
    }
    runner = FakeRunner(answers)
    ruleset = build_ruleset(config(), L4Inputs())
    with pytest.raises(EngineRejected, match="refused"):
        asyncio.run(NftablesShell(runner=runner).check_ruleset(ruleset))
    sent = [stdin for argv, stdin in runner.calls if argv == ["nft", "-j", "-f", "-"]]
    # the table the prelude created (there was none) is deleted again
    assert [json.loads(text or "")["nftables"] for text in sent] == [
        [
            {"add": {"table": {"family": "ip", "name": "bascule"}}},
            {"delete": {"table": {"family": "ip", "name": "bascule"}}},
        ]
    ]


def test_update_checks_then_sends_and_skips_an_empty_one() -> None:
    runner = FakeRunner({})
    engine = NftablesShell(runner=runner)
    asyncio.run(engine.update({"nftables": []}))
    assert runner.calls == []
    flush = {"flush": {"map": {"family": "ip", "table": "bascule", "name": "sched/web"}}}
    asyncio.run(engine.update({"nftables": [flush]}))
    assert [argv for argv, _ in runner.calls] == [
        ["nft", "-c", "-j", "-f", "-"],
        ["nft", "-j", "-f", "-"],
    ]
