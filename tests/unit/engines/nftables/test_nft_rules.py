"""engines/nftables/rules.py: the ruleset's shape asserted on the data (the goldens, in
test_nft_golden.py, show the whole of every case)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from l4_documents import ENV, config

from bascule.engines.nftables.rules import Ruleset, build_ruleset
from bascule.engines.nftables.scheduling import ROUND_ROBIN_SLOTS
from bascule.engines.nftables.view import L4Inputs
from bascule.model import Configuration


def rules(ruleset: Ruleset, chain: str) -> list[list[Any]]:
    return [
        c["add"]["rule"]["expr"]
        for c in ruleset.commands
        if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == chain
    ]


def chains(ruleset: Ruleset) -> set[str]:
    return {c["add"]["chain"]["name"] for c in ruleset.structure if "chain" in c.get("add", {})}


def test_round_robin_map_has_a_fixed_size_so_weights_change_elements_only() -> None:
    ruleset = build_ruleset(config(scheduler="weighted_round_robin"), L4Inputs())
    assert len(ruleset.maps[("ip", "sched/web")]) == ROUND_ROBIN_SLOTS
    assert rules(ruleset, "vs/web") == [
        [
            {
                "vmap": {
                    "key": {"numgen": {"mode": "inc", "mod": 5040, "offset": 0}},
                    "data": "@sched/web",
                }
            }
        ]
    ]
    assert ruleset.prelude == {
        (
            "ip",
            "sched/web",
        ): "add map ip bascule sched/web { typeof numgen inc mod 5040 : verdict ; }"
    }


def test_left_out_servers_keep_their_chains_and_leave_the_maps() -> None:
    cfg = config(
        real_servers=[
            {"address": "198.18.0.11", "port": 80},
            {"address": "198.18.0.12", "port": 80, "state": "drain"},
        ]
    )
    ruleset = build_ruleset(cfg, L4Inputs(environment=ENV))
    targets = {element[1]["goto"]["target"] for element in ruleset.maps[("ip", "sched/web")]}
    assert targets == {"rs/web/198.18.0.11/80"}
    assert {"rs/web/198.18.0.11/80", "rs/web/198.18.0.12/80"} <= chains(ruleset)


def test_fixed_weighting_is_a_one_element_map_that_health_refills() -> None:
    cfg = config(
        scheduler="fixed_weighting",
        real_servers=[
            {"address": "198.18.0.11", "port": 80, "weight": 10},
            {"address": "198.18.0.12", "port": 80, "weight": 30},
        ],
    )
    ruleset = build_ruleset(cfg, L4Inputs())
    assert ruleset.maps[("ip", "fixed/web")] == (
        ["tcp", {"goto": {"target": "rs/web/198.18.0.12/80"}}],
    )
    failed = build_ruleset(cfg, L4Inputs(health={("web", "198.18.0.12:80"): False}))
    assert failed.maps[("ip", "fixed/web")] == (
        ["tcp", {"goto": {"target": "rs/web/198.18.0.11/80"}}],
    )
    assert failed.structure == ruleset.structure


def test_only_l4_enabled_services_and_unused_tables_are_removed() -> None:
    cfg = Configuration.model_validate(
        {"virtual_services": [{"name": "l7", "address": "198.18.0.100", "port": 80}]}
    )
    ruleset = build_ruleset(cfg, L4Inputs())
    assert ruleset.services == {}
    assert ruleset.tables == ()
    assert {next(iter(c)) for c in ruleset.commands} == {"add", "delete"}
    tables = {c["add"]["table"]["family"] for c in ruleset.commands if "add" in c}
    assert tables == {"ip", "ip6", "netdev"}  # ours only, and each is added then deleted


def test_every_command_names_only_our_tables() -> None:
    for forwarding in ("nat", "dsr"):
        cfg = config(forwarding=forwarding, persistence={"method": "source_ip"})
        for command in build_ruleset(cfg, L4Inputs(environment=ENV)).commands:
            for body in command.values():
                for thing in body.values():
                    assert thing.get("table", thing.get("name")) == "bascule"


def test_nat_counts_new_connections_only_and_hooks_no_filter_chain() -> None:
    # An established NAT packet walks no Bascule rule: conntrack accounts for its bytes.
    ruleset = build_ruleset(config(), L4Inputs())
    counters = ruleset.services["web"].counters
    assert counters == {
        f"new/web/198.18.0.1{i}/80": (f"198.18.0.1{i}:80", "new") for i in (1, 2, 3)
    }
    hooked = [
        command["add"]["chain"]
        for command in ruleset.structure
        if "hook" in command.get("add", {}).get("chain", {})
    ]
    assert {chain["type"] for chain in hooked} == {"nat"}


def test_objects_are_every_declaration_and_prelude_map() -> None:
    ruleset = build_ruleset(config(persistence={"method": "source_ip"}), L4Inputs())
    objects = ruleset.objects()
    assert ("ip", "map", "sched/web") in objects  # from the prelude
    assert ("ip", "set", "persist/web/198.18.0.11/80") in objects
    assert ("ip", "chain", "vs/web") in objects
    assert ("ip", "counter", "new/web/198.18.0.11/80") in objects
    assert {family for family, _, _ in objects} == {"ip"}


def two_services(web: dict[str, Any], dsr: dict[str, Any] | None = None) -> Configuration:
    """``web`` (NAT, persistent, weighted round robin) and ``dr`` (DSR) side by side."""
    servers = [{"address": f"198.18.0.1{i}", "port": 80} for i in (1, 2, 3)]
    return Configuration.model_validate(
        {
            "virtual_services": [
                {
                    "name": "web",
                    "address": "198.18.0.100",
                    "port": 80,
                    "mode": "l4",
                    "scheduler": "weighted_round_robin",
                    "persistence": {"method": "source_ip"},
                    "real_servers": servers,
                    **web,
                },
                {
                    "name": "dr",
                    "address": "198.18.0.101",
                    "port": 80,
                    "mode": "l4",
                    "forwarding": "dsr",
                    "real_servers": servers,
                    **(dsr or {}),
                },
            ]
        }
    )


def same_objects(a: Ruleset, b: Ruleset, service: str) -> bool:
    return a.fragments[service] is b.fragments[service]


def test_a_runtime_change_reuses_every_services_structure_and_refills_its_maps() -> None:
    first = build_ruleset(two_services({}), L4Inputs(environment=ENV))
    servers = [
        {"address": "198.18.0.11", "port": 80, "weight": 3},
        {"address": "198.18.0.12", "port": 80, "state": "drain"},
        {"address": "198.18.0.13", "port": 80},
    ]
    changed = two_services({"real_servers": servers})
    macs = {**ENV.server_macs, "198.18.0.13": "02:00:00:00:00:99"}
    health = {("dr", "198.18.0.11:80"): False}
    inputs = L4Inputs(environment=replace(ENV, server_macs=macs), health=health)
    reused = build_ruleset(changed, inputs, first)
    fresh = build_ruleset(changed, inputs)
    # weights, states, health and MACs: the very same structure, maps as a fresh build's
    assert same_objects(first, reused, "web") and same_objects(first, reused, "dr")
    assert reused.structure == first.structure == fresh.structure
    assert list(reused.maps) == list(fresh.maps)
    for ref, elements in fresh.maps.items():
        if ref[1].startswith("sched/web"):
            continue  # round robin: rebalanced from the table that runs (test_nft_scheduling)
        assert list(map(list, reused.maps[ref])) == list(map(list, elements)), ref
    assert reused.maps[("ip", "pin/web/198.18.0.12/80")] == ()  # drained: no client back
    assert reused.maps[("netdev", "mac/dr/198.18.0.13/80")] == (["tcp", "02:00:00:00:00:99"],)
    slots = {element[1]["goto"]["target"] for element in reused.maps[("ip", "sched/web")]}
    assert slots == {"rs/web/198.18.0.11/80", "rs/web/198.18.0.13/80"}
    assert reused.services == fresh.services


def test_a_structural_change_rebuilds_that_service_alone() -> None:
    first = build_ruleset(two_services({}), L4Inputs(environment=ENV))
    servers = [{"address": f"198.18.0.1{i}", "port": 80} for i in (1, 2, 3, 4)]
    grown = two_services({"real_servers": servers})
    reused = build_ruleset(grown, L4Inputs(environment=ENV), first)
    assert same_objects(first, reused, "dr") and not same_objects(first, reused, "web")
    assert reused.structure == build_ruleset(grown, L4Inputs(environment=ENV)).structure
    assert "rs/web/198.18.0.14/80" in chains(reused)
    # a fact of the machine the rules hold (the DSR frames' source MAC) rebuilds them
    moved = L4Inputs(environment=replace(ENV, lb_mac="02:00:00:00:00:03"))
    again = build_ruleset(grown, moved, reused)
    assert not same_objects(reused, again, "dr")
    assert again.structure == build_ruleset(grown, moved).structure


def test_dispatch_is_one_map_lookup_per_family_and_interface() -> None:
    servers = [{"address": "198.18.0.11", "port": 53}, {"address": "2001:2::11", "port": 53}]
    dns = {"mode": "l4", "forwarding": "dsr", "port": 53, "real_servers": servers}
    cfg = Configuration.model_validate(
        {
            "virtual_services": [
                {**dns, "name": "dns", "address": "198.18.0.100", "address6": "2001:2::100"},
                {**dns, "name": "dns-udp", "address": "198.18.0.100", "protocol": "udp"},
                {**dns, "name": "far", "address": "198.18.0.101", "interface": "eth1"},
            ]
        }
    )
    macs = {**ENV.server_macs, "2001:2::11": "02:00:00:00:06:11"}
    ruleset = build_ruleset(cfg, L4Inputs(environment=replace(ENV, server_macs=macs)))

    def lookup(family: str, name: str) -> list[Any]:
        daddr = {"payload": {"protocol": family, "field": "daddr"}}
        dport = {"payload": {"protocol": "th", "field": "dport"}}
        key = {"concat": [daddr, {"meta": {"key": "l4proto"}}, dport]}
        return [{"vmap": {"key": key, "data": f"@{name}"}}]

    assert rules(ruleset, "ingress/eth0") == [
        lookup("ip", "dispatch4/eth0"),
        lookup("ip6", "dispatch6/eth0"),
    ]
    assert rules(ruleset, "ingress/eth1") == [lookup("ip", "dispatch4/eth1")]

    def to(chain: str) -> dict[str, Any]:
        return {"goto": {"target": chain}}

    assert ruleset.maps[("netdev", "dispatch4/eth0")] == (
        [{"concat": ["198.18.0.100", "tcp", 53]}, to("vs/dns")],
        [{"concat": ["198.18.0.100", "udp", 53]}, to("vs/dns-udp")],
    )
    assert ruleset.maps[("netdev", "dispatch6/eth0")] == (
        [{"concat": ["2001:2::100", "tcp", 53]}, to("vs/dns.v6")],
    )
    assert ruleset.maps[("netdev", "dispatch4/eth1")] == (
        [{"concat": ["198.18.0.101", "tcp", 53]}, to("vs/far")],
    )
    # NAT: one map per table, looked up by prerouting's one rule
    nat = build_ruleset(config(extra_ports=["8000-8010"]), L4Inputs())
    assert rules(nat, "prerouting") == [lookup("ip", "dispatch")]
    assert nat.maps[("ip", "dispatch")] == (
        [{"concat": ["198.18.0.100", "tcp", 80]}, to("vs/web")],
        [{"concat": ["198.18.0.100", "tcp", {"range": [8000, 8010]}]}, to("vs/web")],
    )
