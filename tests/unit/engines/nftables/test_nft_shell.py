"""engines/nftables/shell.py with a fake Runner: the commands it sends and how it reads the
answers."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from l4_documents import FakeRunner, config

from bascule.engines.nftables.rules import build_ruleset
from bascule.engines.nftables.shell import (
    IN_PROCESS_INPUT,
    Libnftables,
    NftablesShell,
    in_process,
    kernel_route,
)
from bascule.engines.nftables.view import L4Inputs
from bascule.errors import ApplyFailed, EngineError, EngineRejected
from bascule.net.iproute import parse_route
from bascule.net.shell import Completed


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


def test_update_sends_and_skips_an_empty_one() -> None:
    runner = FakeRunner({})
    engine = NftablesShell(runner=runner)
    asyncio.run(engine.update({"nftables": []}))
    assert runner.calls == []
    flush = {"flush": {"map": {"family": "ip", "table": "bascule", "name": "sched/web"}}}
    asyncio.run(engine.update({"nftables": [flush]}))
    assert [argv for argv, _ in runner.calls] == [["nft", "-j", "-f", "-"]]


def test_listing_tables_and_counters_read_our_tables() -> None:
    table = '{"nftables": [{"table": {"family": "ip", "name": "bascule"}}]}'
    counters = (
        '{"nftables": [{"counter": {"family": "ip", "table": "bascule", "name": "in/web",'
        ' "packets": 3, "bytes": 180}}]}'
    )
    chains = (
        '{"nftables": [{"table": {"family": "ip6", "name": "bascule"}},'
        ' {"chain": {"family": "ip", "table": "bascule", "name": "prerouting"}},'
        ' {"chain": {"family": "netdev", "table": "other", "name": "ingress"}}]}'
    )
    runner = FakeRunner(
        {
            # our tables as their chains show them: ip6's has none (only a prelude made it)
            "nft -j list chains": Completed(returncode=0, stdout=chains, stderr=""),
            "nft -j list table ip bascule": Completed(returncode=0, stdout=table, stderr=""),
            "nft -j list table": Completed(returncode=1, stdout="", stderr="No such file"),
            "nft -j list counters": Completed(returncode=0, stdout=counters, stderr=""),
        }
    )
    shell = NftablesShell(runner=runner)
    assert asyncio.run(shell.listing()).tables == ("ip",)
    assert asyncio.run(shell.tables()) == ("ip",)
    [value] = asyncio.run(shell.counter_values()).values()
    assert (value.packets, value.bytes) == (3, 180)


def test_remove_sends_the_removal() -> None:
    runner = FakeRunner()
    asyncio.run(NftablesShell(runner=runner).remove())
    [(argv, stdin)] = runner.calls
    assert argv == ["nft", "-j", "-f", "-"]
    assert {
        c["delete"]["table"]["family"] for c in json.loads(stdin or "")["nftables"] if "delete" in c
    } == {
        "ip",
        "ip6",
        "netdev",
    }


CHAIN = {"chain": {"family": "ip", "table": "bascule", "name": "prerouting"}}


class FakeLibrary:
    """libnftables(3) as ctypes sees it: records the context's settings and the input."""

    def __init__(self, code: int = 0, out: bytes = b"", err: bytes = b"") -> None:
        self.ran: list[tuple[bytes, int, bool]] = []
        self.made = self.freed = 0
        state: dict[str, Any] = {"flags": 0, "dry": False}

        def run(context: int, text: bytes) -> int:
            self.ran.append((text, state["flags"], state["dry"]))
            return code

        def new(flags: int) -> int:
            self.made += 1
            return self.made

        def free(context: int) -> None:
            self.freed += 1

        functions: dict[str, Callable[..., Any]] = {
            "nft_ctx_new": new,
            "nft_ctx_free": free,
            "nft_ctx_buffer_output": lambda context: 0,
            "nft_ctx_buffer_error": lambda context: 0,
            "nft_ctx_get_output_buffer": lambda context: out,
            "nft_ctx_get_error_buffer": lambda context: err,
            "nft_ctx_output_set_flags": lambda context, flags: state.update(flags=flags),
            "nft_ctx_set_dry_run": lambda context, dry: state.update(dry=dry),
            "nft_run_cmd_from_buffer": run,
        }
        for name, function in functions.items():
            setattr(self, name, function)


def test_small_transactions_and_the_chains_run_in_process() -> None:
    assert in_process(["-j", "-f", "-"], '{"nftables": []}') == ('{"nftables": []}', True, False)
    assert in_process(["-c", "-j", "-f", "-"], "{}") == ("{}", True, True)
    assert in_process(["-j", "list", "chains"], None) == ("list chains", True, False)
    assert in_process(["-j", "-f", "-"], "x" * (IN_PROCESS_INPUT + 1)) is None  # the whole
    assert in_process(["-j", "list", "table", "ip", "bascule"], None) is None  # dumps maps
    assert in_process(["--version"], None) is None


def test_the_library_answers_as_the_nft_process_would() -> None:
    library = FakeLibrary(code=-1, err=b"Error: No such file or directory\n")
    runner = FakeRunner()
    shell = NftablesShell(runner=runner, library=Libnftables(library))  # type: ignore[arg-type]
    with pytest.raises(EngineRejected, match="No such file or directory"):
        asyncio.run(shell.check({"nftables": []}))
    assert library.ran == [(b'{"nftables": []}', 1 << 4, True)]
    # one context for every call (a fresh one's first transaction costs ten times more)
    with pytest.raises(ApplyFailed, match="No such file or directory"):
        asyncio.run(shell.update({"nftables": [CHAIN]}))
    assert library.ran[-1][1:] == (1 << 4, False) and (library.made, library.freed) == (1, 0)
    asyncio.run(shell.version())  # not the library's: the process
    assert runner.ran("nft --version")
    listed = FakeLibrary(out=json.dumps({"nftables": [CHAIN]}).encode())
    shell = NftablesShell(runner=runner, library=Libnftables(listed))  # type: ignore[arg-type]
    assert asyncio.run(shell.tables()) == ("ip",)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "198.18.0.11", "203.0.113.9"])
def test_the_kernel_route_is_what_ip_route_get_says(address: str) -> None:
    """``kernel_route`` (rtnetlink in the process) answers as ``ip -j route get`` does, in
    this namespace: a route's device, gateway, source and locality, or none at all."""
    done = subprocess.run(["ip", "-j", "route", "get", address], capture_output=True, text=True)
    expected = parse_route(done.stdout) if done.returncode == 0 else None
    assert kernel_route(address) == expected
