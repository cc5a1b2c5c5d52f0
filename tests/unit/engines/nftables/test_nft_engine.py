"""engines/nftables/engine.py with a fake Runner that plays nft, conntrack, ip and sysctl.

The driver must report back exactly what it applied, so that the planner converges: after
every ``execute`` the engine's share of the plan is empty.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bascule.engines.base import HealthReport
from bascule.engines.nftables import installation as installation_module
from bascule.engines.nftables.engine import MAX_WEIGHT, NftablesEngine
from bascule.engines.nftables.machine import MAC_REFRESH
from bascule.engines.nftables.view import Exclusion
from bascule.errors import EngineRejected
from bascule.model import Configuration, RealServerState
from bascule.net.shell import Completed
from bascule.reconcile.actions import ChangeServers, ReplaceConfig, SetState, SetWeight
from bascule.reconcile.planner import Observed, plan_engine, plan_reload

T = TypeVar("T")
RS1, RS2, RS3 = "198.18.0.11:80", "198.18.0.12:80", "198.18.0.13:80"
OK = Completed(returncode=0, stdout="", stderr="")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


class FakeKernel:
    """Answers the commands the driver runs, keeping the tables that exist."""

    def __init__(self) -> None:
        self.tables: set[str] = set()
        self.applied: list[dict[str, Any]] = []
        self.calls: list[list[str]] = []
        self.conntrack = ""
        self.counters: list[dict[str, Any]] = []
        self.macs = {"198.18.0.11": "02:00:00:00:00:11", "198.18.0.12": "02:00:00:00:00:12"}
        self.gateway: str | None = None
        self.refuse = 0  # how many of the next transactions nft refuses
        self.refuse_checks = 0  # how many of the next ``nft -c`` of JSON nft refuses

    async def __call__(self, argv: Sequence[str], stdin: str | None) -> Completed:
        argv = list(argv)
        self.calls.append(argv)
        line = " ".join(argv)
        if line == "nft -j -f -":
            document = json.loads(stdin or "{}")
            self.applied.append(document)
            if self.refuse or not self.accepts(document):
                self.refuse = max(0, self.refuse - 1)
                return Completed(returncode=1, stdout="", stderr="No such file or directory")
            for command in document["nftables"]:
                for verb, body in command.items():
                    if "table" in body and verb == "add":
                        self.tables.add(body["table"]["family"])
                    elif "table" in body and verb == "delete":
                        self.tables.discard(body["table"]["family"])
            return OK
        if line == "nft -c -j -f -" and (self.refuse_checks or not self.accepts(stdin)):
            self.refuse_checks = max(0, self.refuse_checks - 1)
            return Completed(returncode=1, stdout="", stderr="No such file or directory")
        if line.startswith("nft -j list chains"):
            items = [
                {"chain": {"family": f, "table": "bascule", "name": "prerouting"}}
                for f in sorted(self.tables)
            ]
            return Completed(returncode=0, stdout=json.dumps({"nftables": items}), stderr="")
        if line.startswith("nft -j list counters"):
            items = [{"counter": c} for c in self.counters]
            return Completed(returncode=0, stdout=json.dumps({"nftables": items}), stderr="")
        if line.startswith("nft -j list table"):
            return Completed(returncode=1, stdout="", stderr="No such file or directory")
        if line.startswith("nft --version"):
            return Completed(returncode=0, stdout="nftables v1.0.6", stderr="")
        if line.startswith("cat /proc/net/nf_conntrack"):
            return Completed(returncode=0, stdout=self.conntrack, stderr="")
        if line.startswith("ip -j route get"):
            route: dict[str, Any] = {"dst": argv[-1], "dev": "eth0"}
            if self.gateway:
                route["gateway"] = self.gateway
            return Completed(returncode=0, stdout=json.dumps([route]), stderr="")
        if line.startswith("ip -j neigh show to"):
            address = argv[5]
            mac = self.macs.get(address)
            found = [{"dst": address, "lladdr": mac, "state": ["REACHABLE"]}] if mac else []
            return Completed(returncode=0, stdout=json.dumps(found), stderr="")
        if line.startswith("ip -j link show"):
            link = [{"ifname": argv[-1], "link_type": "ether", "address": "02:00:00:00:00:02"}]
            return Completed(returncode=0, stdout=json.dumps(link), stderr="")
        return OK  # nft -c, sysctl, conntrack -D, ping

    def ran(self, prefix: str) -> list[list[str]]:
        return [argv for argv in self.calls if " ".join(argv).startswith(prefix)]

    def accepts(self, document: dict[str, Any] | str | None) -> bool:
        """nft refuses a transaction that names a table of ours before it exists."""
        if isinstance(document, str) or document is None:
            document = json.loads(document or "{}")
        tables = set(self.tables)
        for command in document["nftables"]:
            for verb, body in command.items():
                for kind, item in body.items():
                    family = item.get("family")
                    if kind == "table":
                        if verb == "add":
                            tables.add(family)
                        elif verb == "delete":
                            tables.discard(family)
                    elif family is not None and family not in tables:
                        return False
        return True


def config(*, weights: Sequence[int] = (3000, 1000, 1000), **fields: Any) -> Configuration:
    service: dict[str, Any] = {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "mode": "l4",
        "scheduler": "weighted_round_robin",
        "check": {"type": "tcp"},
        "real_servers": [
            {"address": f"198.18.0.1{i + 1}", "port": 80, "weight": w}
            for i, w in enumerate(weights)
        ],
        **fields,
    }
    return Configuration.model_validate({"virtual_services": [service]})


def driver(clock: Callable[[], float] = time.monotonic) -> tuple[NftablesEngine, FakeKernel]:
    kernel = FakeKernel()
    return NftablesEngine(runner=kernel, clock=clock), kernel


async def converged(engine: NftablesEngine, desired: Configuration, applied: Configuration) -> bool:
    observation = await engine.observe(applied)
    observed = Observed(applied=applied, servers=observation.runtime())
    return plan_engine(desired, observed, max_weight=engine.max_weight).empty


def weights_of(engine: NftablesEngine) -> dict[str, int]:
    assert engine._applied is not None
    return dict(engine._applied.ruleset.services["web"].weights)


def test_replace_config_applies_once_and_observe_reports_what_runs() -> None:
    engine, kernel = driver()
    desired = config()
    run(engine.execute([ReplaceConfig(config=desired, reason="new")], None))
    assert len(kernel.applied) == 1
    assert kernel.tables == {"ip"}
    assert run(converged(engine, desired, desired))
    observation = run(engine.observe(desired))
    assert observation.running
    assert observation.servers[("web", RS1)].weight == 3  # 3000:1000 reduced exactly
    assert weights_of(engine) == {RS1: 3, RS2: 1, RS3: 1}
    # NAT needs forwarding and no redirects before its table, conntrack's accounting once it
    # is in (the table loads conntrack), each set once in this namespace
    sysctls = kernel.ran("sysctl")
    assert len(sysctls) == 2 and "net.ipv4.ip_forward=1" in sysctls[0]
    assert "net.ipv4.conf.eth0.send_redirects=0" in sysctls[0]
    assert sysctls[1][-1] == "net.netfilter.nf_conntrack_acct=1"
    run(engine.execute([ReplaceConfig(config=desired, reason="again")], desired))
    assert len(kernel.ran("sysctl")) == 2


def test_weight_and_state_changes_are_map_updates_and_converge() -> None:
    engine, kernel = driver()
    first = config()
    run(engine.execute([ReplaceConfig(config=first, reason="new")], None))
    second = config(weights=(3000, 2000, 1000))
    observation = run(engine.observe(first))
    plan = plan_engine(
        second, Observed(applied=first, servers=observation.runtime()), max_weight=MAX_WEIGHT
    )
    assert plan.actions == (SetWeight(vs="web", server=RS2, weight=2),)
    run(engine.execute(plan.actions, first))
    assert len(kernel.applied) == 2
    assert weights_of(engine) == {RS1: 3, RS2: 2, RS3: 1}
    assert run(converged(engine, second, first))

    drained = Configuration.model_validate(
        {
            "virtual_services": [
                {
                    **second.virtual_services[0].model_dump(mode="json"),
                    "real_servers": [
                        {**rs.model_dump(mode="json"), "state": "drain"}
                        if rs.key == RS3
                        else rs.model_dump(mode="json")
                        for rs in second.virtual_services[0].real_servers
                    ],
                }
            ]
        }
    )
    run(engine.execute([SetState(vs="web", server=RS3, state=RealServerState.drain)], first))
    assert engine._applied is not None
    assert engine._applied.ruleset.services["web"].excluded == {RS3: Exclusion.drain}
    assert run(converged(engine, drained, first))
    # a map update: the scheduling map's changed slots only, no table or rule is touched
    for document in kernel.applied[1:]:
        commands = document["nftables"]
        verbs = {(verb, kind) for c in commands for verb, body in c.items() for kind in body}
        assert verbs == {("delete", "element"), ("add", "element")}
        assert {b["name"] for c in commands for body in c.values() for b in body.values()} == {
            "sched/web"
        }
    # a structural change (a server more) is in place too: its chain, counter and slots,
    # after the guard that fails should our table be gone
    third = config(weights=(3000, 2000, 1000, 1000))
    run(engine.execute([ReplaceConfig(config=third, reason="grown")], drained))
    guard, *last = kernel.applied[-1]["nftables"]
    assert guard == {"add": {"chain": {"family": "ip", "table": "bascule", "name": "vs/web"}}}
    assert not any("table" in body for c in last for body in c.values())
    assert {
        body["name"] for c in last for kind, body in c.get("add", {}).items() if kind != "rule"
    } == {
        "new/web/198.18.0.14/80",
        "rs/web/198.18.0.14/80",
        "sched/web",
    }
    assert weights_of(engine) == {RS1: 3, RS2: 2, RS3: 1, "198.18.0.14:80": 1}


def test_missing_tables_or_a_refused_update_apply_the_whole_ruleset() -> None:
    engine, kernel = driver()
    first = config()
    run(engine.execute([ReplaceConfig(config=first, reason="new")], None))
    kernel.tables.clear()  # deleted by hand
    more = config(weights=(3000, 1000, 1000, 1000))
    run(engine.execute([ReplaceConfig(config=more, reason="grown")], first))
    whole = {"flush": {"table": {"family": "ip", "name": "bascule"}}}
    assert whole in kernel.applied[-1]["nftables"]
    kernel.refuse = 1  # what runs is not what the engine applied: nft refuses the update
    run(engine.execute([SetWeight(vs="web", server=RS2, weight=2)], more))
    assert whole not in kernel.applied[-2]["nftables"]
    assert whole in kernel.applied[-1]["nftables"]
    assert weights_of(engine)[RS2] == 2


def test_health_changes_reapply_and_cut_flows_when_configured() -> None:
    engine, kernel = driver()
    desired = config(drop_on_failure=True)
    run(engine.execute([ReplaceConfig(config=desired, reason="new")], None))
    run(engine.health_changed(("web", RS2), False))
    assert len(kernel.applied) == 2
    assert engine._applied is not None
    assert engine._applied.ruleset.services["web"].excluded == {RS2: Exclusion.down}
    assert kernel.ran("conntrack -D") == [
        [
            "conntrack",
            "-D",
            "-p",
            "tcp",
            "--orig-dst",
            "198.18.0.100",
            "--dport",
            "80",
            "--reply-src",
            "198.18.0.12",
        ]
    ]
    # the server left the scheduling map; no rule was sent again
    update = kernel.applied[-1]["nftables"]
    assert {verb for command in update for verb in command} == {"delete", "add"}
    assert {kind for command in update for kind in command.get("add", {})} == {"element"}
    observation = run(engine.observe(desired))
    assert observation.servers[("web", RS2)].health == "down"
    run(engine.health_changed(("web", RS2), False))  # no change: no apply
    assert len(kernel.applied) == 2
    run(engine.health_changed(("web", RS2), True))
    assert len(kernel.applied) == 3
    assert len(kernel.ran("conntrack -D")) == 1


def test_health_source_decides_and_reports() -> None:
    engine, _ = driver()
    reports = {("web", RS1): HealthReport(up=True, result="ok", duration_ms=2, detail="connected")}
    engine.set_health_source(reports.get)
    desired = config()
    run(engine.execute([ReplaceConfig(config=desired, reason="new")], None))
    assert engine._applied is not None
    excluded = engine._applied.ruleset.services["web"].excluded
    # not checked yet: a server proves itself
    assert excluded == {RS2: Exclusion.down, RS3: Exclusion.down}
    servers = run(engine.observe(desired)).servers
    assert servers[("web", RS1)].health == "up"
    assert servers[("web", RS1)].check_result == "ok"
    assert servers[("web", RS1)].check_duration_ms == 2
    assert servers[("web", RS2)].health == "down"
    assert servers[("web", RS2)].check_detail == "waiting for its first checks"


def test_tick_reapplies_only_when_least_connection_weights_change() -> None:
    engine, kernel = driver()
    desired = config(scheduler="least_connection", weights=(1000, 1000, 1000))
    run(engine.execute([ReplaceConfig(config=desired, reason="new")], None))
    run(engine.tick())
    # first counts (all idle): the weights are now explicit but the maps stay as they are,
    # so nothing is sent to nft
    assert len(kernel.applied) == 1
    assert weights_of(engine) == {RS1: 1, RS2: 1, RS3: 1}
    run(engine.tick())
    assert len(kernel.applied) == 1
    entry = (
        "ipv4 2 tcp 6 431999 ESTABLISHED src=198.18.0.10 dst=198.18.0.100 sport={port} "
        "dport=80 src=198.18.0.11 dst=198.18.0.10 sport=80 dport={port} [ASSURED] use=2\n"
    )
    kernel.conntrack = "".join(entry.format(port=40000 + n) for n in range(3))
    run(engine.tick())
    assert len(kernel.applied) == 2
    assert weights_of(engine) == {RS1: 1, RS2: 4, RS3: 4}  # 1000/4 : 1000 : 1000
    update = kernel.applied[-1]["nftables"]  # a map update, no table flush
    assert {kind for command in update for body in command.values() for kind in body} == {"element"}
    run(engine.tick())
    assert len(kernel.applied) == 2
    # the planner still sees the document's weights: least connection is the engine's business
    assert run(converged(engine, desired, desired))


def test_dsr_server_without_mac_is_left_out_and_reported() -> None:
    now = [0.0]
    engine, kernel = driver(lambda: now[0])
    desired = config(forwarding="dsr", scheduler="source_ip_hash")
    run(engine.check(desired))
    run(engine.execute([ReplaceConfig(config=desired, reason="new")], None))
    assert kernel.tables == {"netdev"}
    servers = run(engine.observe(desired)).servers
    assert servers[("web", RS1)].health == "up"
    assert servers[("web", RS3)].health == "down"
    detail = servers[("web", RS3)].check_detail
    assert detail is not None and "no MAC address" in detail
    assert run(converged(engine, desired, desired))
    run(engine.tick())  # the first refresh: still unknown
    assert run(engine.observe(desired)).servers[("web", RS3)].health == "down"
    # the next refresh, MAC_REFRESH seconds later, finds it and puts it in the maps
    kernel.macs["198.18.0.13"] = "02:00:00:00:00:13"
    run(engine.tick())
    assert run(engine.observe(desired)).servers[("web", RS3)].health == "down"  # not due yet
    now[0] += MAC_REFRESH
    run(engine.tick())
    assert run(engine.observe(desired)).servers[("web", RS3)].health == "up"
    info = run(engine.info())
    assert info["dsr_scheduling"]["round_robin"].startswith("Maglev")
    assert info["services"]["web"]["forwarding"] == "dsr"


def test_adoption_takes_over_without_a_reload_and_stop_removes_the_tables() -> None:
    engine, kernel = driver()
    assert not run(engine.adopt())
    assert not run(engine.observe(None)).running
    kernel.tables = {"ip"}
    desired = config()
    assert run(engine.adopt())
    assert run(converged(engine, desired, desired))
    assert kernel.applied == []
    run(engine.tick())  # the first tick re-applies with this daemon's own inputs
    assert len(kernel.applied) == 1
    run(engine.stop(grace=0))
    assert kernel.tables == set()
    assert not run(engine.observe(None)).running


def test_missing_tables_are_reported_so_the_planner_reapplies() -> None:
    engine, kernel = driver()
    desired = config()
    run(engine.execute([ReplaceConfig(config=desired, reason="new")], None))
    kernel.tables.clear()  # someone ran `nft flush ruleset`
    observation = run(engine.observe(desired))
    assert not observation.running
    assert "missing" in observation.detail


def test_counters_per_server_and_service() -> None:
    engine, kernel = driver()
    desired = config()
    run(engine.execute([ReplaceConfig(config=desired, reason="new")], None))

    def counter(name: str, packets: int, size: int) -> dict[str, Any]:
        return {"family": "ip", "table": "bascule", "name": name, "packets": packets, "bytes": size}

    def flow(port: int, state: str, sent: tuple[int, int], answered: tuple[int, int]) -> str:
        return (
            f"ipv4 2 tcp 6 431999 {state} src=198.18.0.10 dst=198.18.0.100 sport={port} "
            f"dport=80 packets={sent[0]} bytes={sent[1]} src=198.18.0.11 dst=198.18.0.10 "
            f"sport=80 dport={port} packets={answered[0]} bytes={answered[1]} [ASSURED] use=2\n"
        )

    # connections are nft's counter (first packets only), traffic is conntrack's accounting
    kernel.counters = [counter("new/web/198.18.0.11/80", 5, 300)]
    kernel.conntrack = flow(40000, "ESTABLISHED", (12, 1200), (8, 6000)) + flow(
        40001, "TIME_WAIT", (8, 800), (2, 3000)
    )
    observation = run(engine.observe(desired))
    rs1 = observation.servers[("web", RS1)]
    assert (rs1.total_connections, rs1.current_connections) == (5, 1)
    assert (rs1.packets, rs1.bytes_in, rs1.bytes_out) == (30, 2000, 9000)
    web = observation.services["web"]
    assert (web.packets, web.bytes_in, web.bytes_out) == (20, 2000, 9000)
    assert (web.total_connections, web.current_connections) == (5, 1)
    # the ended flow leaves conntrack: its traffic stays counted
    kernel.conntrack = flow(40000, "ESTABLISHED", (13, 1300), (9, 7000))
    rs1 = run(engine.observe(desired)).servers[("web", RS1)]
    assert (rs1.packets, rs1.bytes_in, rs1.bytes_out) == (32, 2100, 10000)


def test_no_l4_service_and_no_table_means_no_nft_apply() -> None:
    engine, kernel = driver()
    empty = Configuration()
    run(engine.check(empty))
    run(engine.execute([ReplaceConfig(config=empty, reason="new")], None))
    assert kernel.applied == [] and kernel.ran("nft -c") == []
    assert run(engine.observe(empty)).running
    assert run(converged(engine, empty, empty))
    # the last L4 service leaves: its tables go in the same kind of transaction
    run(engine.execute([ReplaceConfig(config=config(), reason="new")], empty))
    run(engine.execute([ReplaceConfig(config=empty, reason="gone")], config()))
    assert kernel.tables == set()


def test_a_machine_without_nft_still_reports_its_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An L7-only machine may lack nftables: the real runner cannot start nft at all.
    monkeypatch.setenv("PATH", str(tmp_path))
    engine = NftablesEngine()
    info = run(engine.info())
    assert (info["version"], info["running"], info["idle"]) == ("not installed", False, True)
    empty = Configuration()
    run(engine.execute([ReplaceConfig(config=empty, reason="new")], None))
    assert run(engine.observe(empty)).running  # no L4 service: nothing of nft is needed


def test_the_planners_observation_reads_no_counters() -> None:
    """``observe(counters=False)``: nft 1.0.6 fetches every map's elements to list counters
    (a second with a 65537-slot Maglev map), which the planner does not need."""
    engine, kernel = driver()
    desired = config()
    run(engine.execute([ReplaceConfig(config=desired, reason="new")], None))
    kernel.calls.clear()
    observation = run(engine.observe(desired, counters=False))
    assert observation.running
    assert kernel.calls == [["nft", "-j", "list", "chains"]]
    assert observation.runtime() == run(engine.observe(desired)).runtime()


def test_the_apply_sends_what_the_check_built_without_listing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, kernel = driver()
    first = config()
    run(engine.execute([ReplaceConfig(config=first, reason="new")], None))
    builds: list[object] = []
    build = installation_module.build_ruleset

    def counted(*args: Any) -> Any:
        builds.append(args)
        return build(*args)

    monkeypatch.setattr(installation_module, "build_ruleset", counted)
    grown = config(weights=(3000, 1000, 1000, 1000))
    listings = len(kernel.ran("nft -j list"))
    run(engine.check(grown))  # the change pipeline
    run(engine.execute([ReplaceConfig(config=grown, reason="grown")], first))
    assert len(builds) == 1  # the check's ruleset, applied in place
    # the guard stands for a listing of our tables
    assert len(kernel.ran("nft -j list")) == listings
    guard = {"add": {"chain": {"family": "ip", "table": "bascule", "name": "vs/web"}}}
    assert kernel.applied[-1]["nftables"][0] == guard
    assert weights_of(engine) == {RS1: 3, RS2: 1, RS3: 1, "198.18.0.14:80": 1}
    # a check of another document is not used
    run(engine.check(config(weights=(1, 1, 1, 1, 1))))
    run(engine.execute([ReplaceConfig(config=first, reason="shrunk")], grown))
    assert len(builds) == 3
    assert weights_of(engine) == {RS1: 3, RS2: 1, RS3: 1}


def test_an_in_place_check_sends_no_dry_run_and_a_refused_apply_goes_whole() -> None:
    """What goes in place is not ``nft -c``'d by ``check``: the apply sends that very
    transaction right after, and the kernel validates it as it commits it. A refused one
    (our table deleted by hand) changes nothing: the whole ruleset goes, checked first;
    refused too, the apply fails and the engine keeps what ran."""
    engine, kernel = driver()
    first = config()
    run(engine.execute([ReplaceConfig(config=first, reason="new")], None))
    checks, whole = len(kernel.ran("nft -c")), len(kernel.ran("nft -c -j -f -"))
    grown = config(weights=(3000, 1000, 1000, 1000))
    run(engine.check(grown))
    assert len(kernel.ran("nft -c")) == checks
    kernel.tables.clear()  # deleted by hand: nft refuses what would change them in place
    run(engine.execute([ReplaceConfig(config=grown, reason="grown")], first))
    assert len(kernel.ran("nft -c -j -f -")) == whole + 1  # the whole ruleset, checked
    assert kernel.tables == {"ip"}
    assert weights_of(engine) == {RS1: 3, RS2: 1, RS3: 1, "198.18.0.14:80": 1}
    kernel.refuse, kernel.refuse_checks = 1, 1  # in place and whole: the apply fails
    with pytest.raises(EngineRejected):
        run(engine.execute([ReplaceConfig(config=first, reason="shrunk")], grown))
    assert weights_of(engine) == {RS1: 3, RS2: 1, RS3: 1, "198.18.0.14:80": 1}
    # nothing runs yet: the check is the whole transaction's ``nft -c``
    fresh, kernel = driver()
    run(fresh.check(first))
    assert kernel.ran("nft -c -j -f -")


def test_servers_added_or_removed_are_a_runtime_change_unless_a_new_dsr_server() -> None:
    """``server_changes``: real servers of running L4 services that come or go are no
    reload but the in-place update, which the change pipeline does not ``check`` (the
    kernel's commit validates it); a new DSR server (on-link?) or a change of the service
    itself is a ``ReplaceConfig``, checked first."""
    engine, kernel = driver()
    first = config()
    run(engine.execute([ReplaceConfig(config=first, reason="new")], None))
    grown = config(weights=(3000, 1000, 1000, 1000))
    new = ("web", "198.18.0.14:80")
    assert engine.server_changes(first, grown) == ChangeServers(config=grown, added=(new,))
    assert engine.server_changes(grown, first) == ChangeServers(config=first, removed=(new,))
    assert engine.server_changes(first, config(port=8080)) is None
    assert engine.server_changes(first, config(weights=(1, 1, 1))) is None  # weights only
    dsr, dsr_grown = config(forwarding="dsr"), config(weights=(1, 1, 1, 1), forwarding="dsr")
    assert engine.server_changes(dsr, dsr_grown) is None
    assert engine.server_changes(dsr_grown, dsr) is not None  # one leaves: nothing to ask
    checks = len(kernel.ran("nft -c"))
    plan = plan_reload(
        grown, first, server_changes=engine.server_changes, max_weight=engine.max_weight
    )
    assert plan is not None and not plan.reloads and plan.replaces
    run(engine.execute(plan.actions, first))
    assert len(kernel.ran("nft -c")) == checks
    assert weights_of(engine) == {RS1: 3, RS2: 1, RS3: 1, "198.18.0.14:80": 1}
    assert run(converged(engine, grown, grown))
