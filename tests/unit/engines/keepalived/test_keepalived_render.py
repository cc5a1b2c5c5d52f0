"""The pair's keepalived configuration: golden files (tests/golden/keepalived/<case>.conf),
each accepted by the real ``keepalived --config-test``, the view's decisions (which node this
is, what reloads it), and refusals of anything that could inject into the file."""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from bascule.engines.keepalived.engine import KeepalivedEngine
from bascule.engines.keepalived.render import render
from bascule.engines.keepalived.shell import KeepalivedPaths, KeepalivedShell, notify_script
from bascule.engines.keepalived.view import (
    KeepalivedGlobals,
    NotANode,
    advert_int,
    build_view,
    runs_keepalived,
    share,
)
from bascule.errors import EngineRejected, InvalidConfiguration
from bascule.model import Configuration, parse_document
from bascule.reconcile.actions import ReplaceConfig
from bascule.reconcile.planner import structural_signature

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "keepalived"
UPDATE_GOLDEN = os.environ.get("BASCULE_UPDATE_GOLDEN") == "1"
KEEPALIVED = shutil.which("keepalived") or (
    "/usr/sbin/keepalived" if Path("/usr/sbin/keepalived").exists() else None
)
RUN = "/var/lib/bascule/keepalived"
GLOBALS = KeepalivedGlobals(
    notify_script=f"{RUN}/notify.sh", alive_file=f"{RUN}/alive", standby_file=f"{RUN}/standby"
)
LB1 = frozenset({"127.0.0.1", "198.18.0.3"})
PAIR: dict[str, Any] = {
    "nodes": [
        {"name": "lb1", "address": "198.18.0.3", "priority": 150},
        {"name": "lb2", "address": "198.18.0.4", "priority": 100},
    ],
    "interface": "eth0",
    "virtual_router_id": 51,
    "advert_interval": 0.2,
}


def web(name: str, address: str, port: int = 80, **more: Any) -> dict[str, Any]:
    return {"name": name, "address": address, "port": port, **more}


CASES: dict[str, dict[str, Any]] = {
    "pair_issue_example": {
        "high_availability": {**PAIR, "interface": "e0"},
        "virtual_services": [web("web", "198.18.0.100")],
    },
    "pair_preempt_one_second": {
        "high_availability": {**PAIR, "preempt": True, "advert_interval": 1},
        "virtual_services": [web("web", "198.18.0.100")],
    },
    "pair_every_vip_once": {
        "high_availability": PAIR,
        "virtual_services": [
            web("web", "198.18.0.101"),
            web("web-tls", "198.18.0.101", 443),
            web("dns", "198.18.0.100", 53, protocol="udp"),
            web("other-if", "198.18.1.100", interface="eth1"),
            web("web6", "2001:2::100"),
            web("any", "0.0.0.0", 8080),
        ],
    },
    "pair_ipv6_nodes": {
        "high_availability": {
            **PAIR,
            "nodes": [
                {"name": "lb1", "address": "2001:2::3", "priority": 150},
                {"name": "lb2", "address": "2001:2::4"},
            ],
        },
        "virtual_services": [web("web6", "2001:2::100"), web("web4", "198.18.0.100")],
    },
}
ADDRESSES = {"pair_ipv6_nodes": frozenset({"2001:2::3"})}


def config_of(case: str) -> Configuration:
    return share(parse_document(CASES[case]))


def text_of(case: str) -> str:
    return render(build_view(config_of(case), GLOBALS, ADDRESSES.get(case, LB1)))


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    text = text_of(case)
    path = GOLDEN_DIR / f"{case}.conf"
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no golden file {path}; create it with BASCULE_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs (BASCULE_UPDATE_GOLDEN=1 to update)"


@pytest.mark.skipif(UPDATE_GOLDEN, reason="golden files are being rewritten")
def test_no_stale_golden_files() -> None:
    assert {p.stem for p in GOLDEN_DIR.glob("*.conf")} == set(CASES)


@pytest.mark.skipif(KEEPALIVED is None, reason="keepalived is not installed")
@pytest.mark.parametrize("case", sorted(CASES))
def test_keepalived_accepts(case: str, tmp_path: Path) -> None:
    # keepalived -t also checks that the interfaces exist: here, one of the test machine's
    links = sorted(name for name in os.listdir("/sys/class/net") if name != "lo")
    if not links:
        pytest.skip("this machine has no interface but lo, which VRRP cannot use")
    text = text_of(case)
    for name in ("eth0", "eth1", "e0"):
        text = text.replace(f" {name}\n", f" {links[0]}\n")
    shell = KeepalivedShell(KeepalivedPaths.under(tmp_path / "run"), binary=str(KEEPALIVED))
    asyncio.run(shell.check(text))


@pytest.mark.skipif(KEEPALIVED is None, reason="keepalived is not installed")
def test_keepalived_refusals_are_reported(tmp_path: Path) -> None:
    shell = KeepalivedShell(KeepalivedPaths.under(tmp_path / "run"), binary=str(KEEPALIVED))
    broken = text_of("pair_issue_example").replace("advert_int 0.2", "advert_int zz")
    with pytest.raises(EngineRejected) as caught:
        asyncio.run(shell.check(broken))
    assert "invalid number 'zz'" in str(caught.value)


def test_each_node_finds_itself() -> None:
    config = config_of("pair_issue_example")
    lb2 = build_view(config, GLOBALS, frozenset({"198.18.0.4"})).instance
    assert (lb2.source, lb2.peer, lb2.priority) == ("198.18.0.4", "198.18.0.3", 100)
    lb1 = build_view(config, GLOBALS, LB1).instance
    assert (lb1.source, lb1.peer, lb1.priority) == ("198.18.0.3", "198.18.0.4", 150)


@pytest.mark.parametrize(
    ("addresses", "words"),
    [
        (frozenset({"198.18.0.9"}), "holds neither node's address"),
        (frozenset({"198.18.0.3", "198.18.0.4"}), "holds both"),
    ],
)
def test_a_machine_that_is_not_one_node_is_refused(addresses: frozenset[str], words: str) -> None:
    with pytest.raises(NotANode, match=words):
        build_view(config_of("pair_issue_example"), GLOBALS, addresses)


def test_the_engine_names_the_field_when_it_is_not_a_node(tmp_path: Path) -> None:
    async def elsewhere() -> frozenset[str]:
        return frozenset({"198.18.0.9"})

    engine = KeepalivedEngine(tmp_path, addresses=elsewhere)
    with pytest.raises(EngineRejected, match=r"high_availability\.nodes: this machine"):
        asyncio.run(engine.check(parse_document(CASES["pair_issue_example"])))


def test_a_single_node_runs_no_keepalived() -> None:
    single = share(parse_document({"virtual_services": [web("web", "198.18.0.100")]}))
    assert single.high_availability is None and single.virtual_services == []
    assert not runs_keepalived(single)


def test_a_pair_without_a_vip_runs_no_keepalived_yet() -> None:
    assert not runs_keepalived(share(parse_document({"high_availability": PAIR})))
    wildcard = {"high_availability": PAIR, "virtual_services": [web("any", "0.0.0.0")]}
    assert not runs_keepalived(share(parse_document(wildcard)))
    assert runs_keepalived(config_of("pair_issue_example"))


def test_only_the_pair_and_the_vips_reload_keepalived() -> None:
    document = copy.deepcopy(CASES["pair_issue_example"])
    before = structural_signature(share(parse_document(document)))
    document["virtual_services"][0].update(
        port=8080, real_servers=[{"address": "198.18.0.11", "port": 80}], check={"type": "tcp"}
    )
    assert structural_signature(share(parse_document(document))) == before
    document["virtual_services"][0]["address"] = "198.18.0.101"
    assert structural_signature(share(parse_document(document))) != before
    document["high_availability"]["advert_interval"] = 1
    assert share(parse_document(document)).high_availability is not None


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.2, "0.2"), (1.0, "1"), (0.05, "0.05"), (40.95, "40.95"), (3, "3")]
)
def test_advert_int(seconds: float, text: str) -> None:
    assert advert_int(seconds) == text


HOSTILE = [
    'x" \n}\nvrrp_script evil { script "/bin/sh',
    "a b",
    "$EVIL",
    "#comment",
    "!comment",
    "",
    "a'b",
    "path\x00",
    "é",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_paths_are_refused(value: str) -> None:
    config = config_of("pair_issue_example")
    for globals_ in (
        KeepalivedGlobals(notify_script=value, alive_file="/a", standby_file="/s"),
        KeepalivedGlobals(notify_script="/n", alive_file=value, standby_file="/s"),
        KeepalivedGlobals(notify_script="/n", alive_file="/a", standby_file=value),
    ):
        with pytest.raises(ValueError, match="cannot be written to a keepalived"):
            build_view(config, globals_, LB1)


@pytest.mark.parametrize("value", HOSTILE[:5])
def test_hostile_document_strings_never_reach_the_file(value: str) -> None:
    """Every string of the document that keepalived reads is refused by the model first."""
    for document in (
        {"high_availability": {**PAIR, "interface": value}},
        {
            "high_availability": PAIR,
            "virtual_services": [web("web", "198.18.0.100", interface=value)],
        },
        {
            "high_availability": {
                **PAIR,
                "nodes": [{**PAIR["nodes"][0], "name": value}, PAIR["nodes"][1]],
            }
        },
    ):
        with pytest.raises(InvalidConfiguration, match="must be"):
            parse_document(document)


def test_the_notify_script_quotes_its_paths() -> None:
    script = notify_script(Path(f"{RUN}/vrrp.state"))
    assert f"mv -f '{RUN}/.vrrp.state.tmp' '{RUN}/vrrp.state'" in script
    assert '"$3" "$4"' in script


def test_a_single_node_reports_keepalived_idle(tmp_path: Path) -> None:
    engine = KeepalivedEngine(tmp_path, binary=str(tmp_path / "no-keepalived"))
    single = share(parse_document({"virtual_services": [web("web", "198.18.0.100")]}))
    asyncio.run(engine.execute([ReplaceConfig(config=single, reason="start")], None))
    info = asyncio.run(engine.info())
    assert info["idle"] is True and info["running"] is False
    observed = asyncio.run(engine.observe(single))
    assert observed.running  # nothing to run is nothing missing
