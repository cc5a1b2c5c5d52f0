"""Decisions of engines/nftables/view.py, asserted on the data (the goldens show the whole)."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.engines.nftables.view import (
    DSR_SCHEDULING,
    Environment,
    L4Inputs,
    Selection,
    ViewError,
    build_ruleset,
    smooth_sequence,
    transaction,
)
from bascule.model import Configuration, Scheduler

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


def targets(expr: list[Any]) -> list[str]:
    return [element[1]["goto"]["target"] for element in expr[-1]["vmap"]["data"]["set"]]


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
    plain = build_ruleset(config(), L4Inputs())
    assert targets(rules(plain, "vs/web")[0]) == [
        "rs/web/198.18.0.11/80",
        "rs/web/198.18.0.12/80",
        "rs/web/198.18.0.13/80",
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
        "198.18.0.12:80": "drain",
        "198.18.0.13:80": "disabled",
        "198.18.0.14:80": "down",
    }
    assert rules(ruleset, "vs/web") == [[{"goto": {"target": "rs/web/198.18.0.11/80"}}]]


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
    assert rules(ruleset, "vs/web") == [[{"goto": {"target": "rs/web/198.18.0.12/80"}}]]
    failed = build_ruleset(cfg, L4Inputs(health={("web", "198.18.0.12:80"): False}))
    assert rules(failed, "vs/web") == [[{"goto": {"target": "rs/web/198.18.0.11/80"}}]]


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
    assert set(view.excluded) == {"198.18.0.12:80", "198.18.0.13:80"}
    assert "MAC" in view.excluded["198.18.0.12:80"]


def test_dsr_refuses_a_port_change_per_server() -> None:
    cfg = config(forwarding="dsr", real_servers=[{"address": "198.18.0.11", "port": 8080}])
    view = build_ruleset(cfg, L4Inputs(environment=ENV)).services["web"]
    assert "port" in view.excluded["198.18.0.11:8080"]


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
