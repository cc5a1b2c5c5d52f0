"""Decisions of engines/nftables/view.py, asserted on the data (the goldens show the whole)."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.engines.nftables.view import (
    DSR_SCHEDULING,
    NAT_SCHEDULING,
    ROUND_ROBIN_SLOTS,
    STICKY,
    Environment,
    Exclusion,
    L4Inputs,
    Selection,
    ViewError,
    apportion,
    build_ruleset,
    map_update,
    prelude,
    round_robin_slots,
    smooth_sequence,
    transaction,
)
from bascule.model import Configuration, Mode, PersistenceMethod, Scheduler

MACS = {f"198.18.0.{i}": f"02:00:00:00:00:{i}" for i in (11, 12, 13)}
ENV = Environment(lb_mac="02:00:00:00:00:02", server_macs=MACS, maglev_size=31)


def config(**fields: Any) -> Configuration:
    service = {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "mode": "l4",
        "real_servers": [
            {"address": "198.18.0.11", "port": 80},
            {"address": "198.18.0.12", "port": 80},
            {"address": "198.18.0.13", "port": 80},
        ],
        **fields,
    }
    return Configuration.model_validate({"virtual_services": [service]})


def rules(ruleset: Any, chain: str) -> list[list[Any]]:
    return [
        c["add"]["rule"]["expr"]
        for c in ruleset.commands
        if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == chain
    ]


def targets(ruleset: Any, name: str, family: str = "ip") -> list[str]:
    """The goto targets of a map's elements, slot by slot."""
    return [element[1]["goto"]["target"] for element in ruleset.maps[(family, name)]]


def test_smooth_sequence_interleaves() -> None:
    assert smooth_sequence({"a": 5, "b": 1, "c": 1}) == ("a", "a", "b", "a", "c", "a", "a")
    assert smooth_sequence({"a": 1, "b": 1}) == ("a", "b")


def test_round_robin_ignores_weights_and_weighted_follows_them() -> None:
    weighted = config(
        scheduler="weighted_round_robin",
        real_servers=[
            {"address": "198.18.0.11", "port": 80, "weight": 3000},
            {"address": "198.18.0.12", "port": 80, "weight": 1000},
        ],
    )
    view = build_ruleset(weighted, L4Inputs()).services["web"]
    assert view.weights == {"198.18.0.11:80": 3, "198.18.0.12:80": 1}
    plain = build_ruleset(config(), L4Inputs(environment=Environment(round_robin_slots=6)))
    assert (
        targets(plain, "sched/web")
        == [
            "rs/web/198.18.0.11/80",
            "rs/web/198.18.0.12/80",
            "rs/web/198.18.0.13/80",
        ]
        * 2
    )


def test_round_robin_map_has_a_fixed_size_so_weights_change_elements_only() -> None:
    assert apportion({"a": 3, "b": 1, "c": 1}, 10) == {"a": 6, "b": 2, "c": 2}
    assert apportion({"a": 1, "b": 1, "c": 1}, 10) == {"a": 4, "b": 3, "c": 3}
    assert round_robin_slots({"a": 1, "b": 1}, 4) == ("a", "b", "a", "b")
    weighted = config(scheduler="weighted_round_robin")
    ruleset = build_ruleset(weighted, L4Inputs())
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


def test_down_drained_and_disabled_servers_leave_the_maps() -> None:
    cfg = config(
        real_servers=[
            {"address": "198.18.0.11", "port": 80},
            {"address": "198.18.0.12", "port": 80, "state": "drain"},
            {"address": "198.18.0.13", "port": 80, "state": "disabled"},
            {"address": "198.18.0.14", "port": 80},
        ]
    )
    ruleset = build_ruleset(cfg, L4Inputs(health={("web", "198.18.0.14:80"): False}))
    view = ruleset.services["web"]
    assert view.excluded == {
        "198.18.0.12:80": Exclusion.drain,
        "198.18.0.13:80": Exclusion.disabled,
        "198.18.0.14:80": Exclusion.down,
    }
    assert not any(reason.faulty for reason in view.excluded.values())
    assert set(targets(ruleset, "sched/web")) == {"rs/web/198.18.0.11/80"}
    # the left-out servers keep their chains: coming back is a map update
    chains = {c["add"]["chain"]["name"] for c in ruleset.structure if "chain" in c.get("add", {})}
    assert {f"rs/web/198.18.0.1{i}/80" for i in (1, 2, 3, 4)} <= chains


def test_least_connection_uses_the_given_weights() -> None:
    given = {"198.18.0.11:80": 2000, "198.18.0.12:80": 1000, "198.18.0.13:80": 1000}
    inputs = L4Inputs(weights={("web", key): weight for key, weight in given.items()})
    view = build_ruleset(config(scheduler="least_connection"), inputs).services["web"]
    assert view.weights == {"198.18.0.11:80": 2, "198.18.0.12:80": 1, "198.18.0.13:80": 1}


def test_plain_least_connection_ignores_configured_weights_until_counts_arrive() -> None:
    servers = [
        {"address": "198.18.0.11", "port": 80, "weight": 3000},
        {"address": "198.18.0.12", "port": 80, "weight": 1000},
    ]
    plain = config(scheduler="least_connection", real_servers=servers)
    assert build_ruleset(plain, L4Inputs()).services["web"].weights == {
        "198.18.0.11:80": 1,
        "198.18.0.12:80": 1,
    }
    weighted = config(scheduler="weighted_least_connection", real_servers=servers)
    assert build_ruleset(weighted, L4Inputs()).services["web"].weights == {
        "198.18.0.11:80": 3,
        "198.18.0.12:80": 1,
    }


def test_fixed_weighting_keeps_the_heaviest_server_that_is_up() -> None:
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
    assert ruleset.services["web"].excluded == {"198.18.0.11:80": Exclusion.standby}
    assert not Exclusion.standby.faulty  # standing by is healthy
    failed = build_ruleset(cfg, L4Inputs(health={("web", "198.18.0.12:80"): False}))
    assert failed.maps[("ip", "fixed/web")] == (
        ["tcp", {"goto": {"target": "rs/web/198.18.0.11/80"}}],
    )
    assert failed.structure == ruleset.structure


def test_every_scheduler_of_l4_has_a_selection_in_each_forwarding() -> None:
    l4 = {scheduler for scheduler in Scheduler if Mode.l4 in scheduler.modes}
    assert set(NAT_SCHEDULING) == l4
    assert set(DSR_SCHEDULING) == l4


def test_every_persistence_method_of_l4_is_translated() -> None:
    assert set(STICKY) == {method for method in PersistenceMethod if Mode.l4 in method.modes}


def test_dsr_maps_every_scheduler_onto_maglev_and_says_so() -> None:
    for scheduler, selection in DSR_SCHEDULING.items():
        cfg = config(forwarding="dsr", scheduler=scheduler.value)
        view = build_ruleset(cfg, L4Inputs(environment=ENV)).services["web"]
        assert view.selection is selection
        assert view.table == "netdev"
    assert DSR_SCHEDULING[Scheduler.round_robin] is Selection.flow_maglev


def test_dsr_server_without_a_mac_is_left_out_and_reported() -> None:
    env = Environment(lb_mac="02:00:00:00:00:02", server_macs={"198.18.0.11": "02:0:0:0:0:11"})
    view = build_ruleset(config(forwarding="dsr"), L4Inputs(environment=env)).services["web"]
    assert view.excluded == {
        "198.18.0.12:80": Exclusion.no_mac,
        "198.18.0.13:80": Exclusion.no_mac,
    }
    assert Exclusion.no_mac.faulty and "MAC" in Exclusion.no_mac.value


def test_dsr_refuses_a_port_change_per_server() -> None:
    cfg = config(forwarding="dsr", real_servers=[{"address": "198.18.0.11", "port": 8080}])
    view = build_ruleset(cfg, L4Inputs(environment=ENV)).services["web"]
    assert view.excluded == {"198.18.0.11:8080": Exclusion.dsr_port}


def test_dsr_needs_the_lb_mac() -> None:
    with pytest.raises(ViewError, match="MAC"):
        build_ruleset(config(forwarding="dsr"), L4Inputs(environment=Environment(server_macs=MACS)))


@pytest.mark.parametrize("method", ["active_cookie", "url_hash", "ssl_session_id"])
def test_l7_persistence_is_refused(method: str) -> None:
    with pytest.raises(ViewError, match="needs L7"):
        build_ruleset(config(persistence={"method": method}), L4Inputs())


def test_l7_scheduler_is_refused() -> None:
    with pytest.raises(ViewError, match="needs L7"):
        build_ruleset(config(scheduler="url_hash"), L4Inputs())


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


def test_transaction_keeps_existing_persistence_sets_and_prunes_the_rest() -> None:
    cfg = config(persistence={"method": "source_ip"})
    ruleset = build_ruleset(cfg, L4Inputs())
    listing = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "ip", "name": "bascule"}},
            {"set": {"family": "ip", "table": "bascule", "name": "persist/web/198.18.0.11/80"}},
            {"set": {"family": "ip", "table": "bascule", "name": "persist/old/198.18.0.9/80"}},
            {"chain": {"family": "ip", "table": "bascule", "name": "vs/old"}},
            {"counter": {"family": "ip", "table": "bascule", "name": "in/old"}},
            {"chain": {"family": "ip", "table": "other", "name": "vs/old"}},
        ]
    }
    commands = transaction(ruleset, listing)["nftables"]
    declared = [c["add"]["set"]["name"] for c in commands if "set" in c.get("add", {})]
    assert "persist/web/198.18.0.11/80" not in declared
    assert "persist/web/198.18.0.12/80" in declared
    deleted = [c["delete"] for c in commands if "delete" in c and "table" not in c["delete"]]
    assert deleted == [
        {"chain": {"family": "ip", "table": "bascule", "name": "vs/old"}},
        {"set": {"family": "ip", "table": "bascule", "name": "persist/old/198.18.0.9/80"}},
        {"counter": {"family": "ip", "table": "bascule", "name": "in/old"}},
    ]


def test_counters_are_named_per_service_and_server() -> None:
    view = build_ruleset(config(), L4Inputs()).services["web"]
    assert view.counters["in/web"] == ("", "in")
    assert view.counters["new/web/198.18.0.11/80"] == ("198.18.0.11:80", "new")
    assert view.counters["traffic/web/198.18.0.11/80"] == ("198.18.0.11:80", "traffic")


def test_map_update_refills_only_the_changed_maps() -> None:
    cfg = config(scheduler="weighted_round_robin", persistence={"method": "source_ip"})
    env = Environment(round_robin_slots=10)
    before = build_ruleset(cfg, L4Inputs(environment=env))
    down = L4Inputs(environment=env, health={("web", "198.18.0.13:80"): False})
    after = build_ruleset(cfg, down)
    update = map_update(before, after)
    assert update is not None
    assert [c["flush"]["map"]["name"] for c in update["nftables"] if "flush" in c] == [
        "pin/web/198.18.0.13/80",
        "sched/web",
    ]
    [fill] = [c["add"]["element"] for c in update["nftables"] if "add" in c]
    assert fill["name"] == "sched/web"
    assert {e[1]["goto"]["target"] for e in fill["elem"]} == {
        "rs/web/198.18.0.11/80",
        "rs/web/198.18.0.12/80",
    }
    assert map_update(after, after) == {"nftables": []}


def test_map_update_refuses_a_structural_change() -> None:
    before = build_ruleset(config(), L4Inputs())
    more = config(real_servers=[{"address": f"198.18.0.1{i}", "port": 80} for i in (1, 2, 3, 4)])
    assert map_update(before, build_ruleset(more, L4Inputs())) is None
    assert map_update(before, build_ruleset(config(port=81), L4Inputs())) is None
    fixed = build_ruleset(config(scheduler="fixed_weighting"), L4Inputs())
    assert map_update(before, fixed) is None


def test_dsr_mac_refresh_is_a_map_update() -> None:
    cfg = config(forwarding="dsr", scheduler="source_ip_hash")
    before = build_ruleset(cfg, L4Inputs(environment=ENV))
    moved = Environment(
        lb_mac=ENV.lb_mac, server_macs={**MACS, "198.18.0.12": "02:00:00:00:01:12"}, maglev_size=31
    )
    update = map_update(before, build_ruleset(cfg, L4Inputs(environment=moved)))
    assert update == {
        "nftables": [
            {
                "flush": {
                    "map": {
                        "family": "netdev",
                        "table": "bascule",
                        "name": "mac/web/198.18.0.12/80",
                    }
                }
            },
            {
                "add": {
                    "element": {
                        "family": "netdev",
                        "table": "bascule",
                        "name": "mac/web/198.18.0.12/80",
                        "elem": [["tcp", "02:00:00:00:01:12"]],
                    }
                }
            },
        ]
    }


def test_prelude_declares_only_the_missing_integer_maps() -> None:
    ruleset = build_ruleset(config(), L4Inputs())
    assert prelude(ruleset, {"nftables": []}) == (
        "add table ip bascule\n"
        "add map ip bascule sched/web { typeof numgen inc mod 5040 : verdict ; }\n"
    )
    listed = {"nftables": [{"map": {"family": "ip", "table": "bascule", "name": "sched/web"}}]}
    assert prelude(ruleset, listed) is None
