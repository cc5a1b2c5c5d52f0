"""engines/nftables/transaction.py: the listing of our tables read once, and the transactions
against what runs (full, in place, prelude and its undoing, removal)."""

from __future__ import annotations

import json
from typing import Any

from l4_documents import ENV, MACS, config

from bascule.engines.nftables.rules import build_ruleset
from bascule.engines.nftables.transaction import (
    CounterValue,
    Listing,
    element_changes,
    in_place,
    prelude,
    removal,
    table_guard,
    transaction,
    undo_prelude,
)
from bascule.engines.nftables.view import Environment, L4Inputs
from bascule.model import Configuration


def listing(*items: dict[str, object]) -> Listing:
    return Listing.parse(json.dumps({"nftables": list(items)}))


def test_listing_keeps_our_tables_only() -> None:
    listed = listing(
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "netdev", "name": "bascule"}},
        {"table": {"family": "ip", "name": "bascule"}},
        {"table": {"family": "ip", "name": "other"}},
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
        {"map": {"family": "ip", "table": "bascule", "name": "sched/web"}},
        {"chain": {"family": "ip", "table": "other", "name": "vs/old"}},
    )
    assert listed.tables == ("ip", "netdev")  # in FAMILIES order
    assert listed.counters() == {("ip", "in/web"): CounterValue(packets=3, bytes=180)}
    assert listed.objects("map", "chain") == {("ip", "map", "sched/web")}
    assert Listing.parse("") == Listing()
    assert (listed + Listing()).items == listed.items


def test_transaction_keeps_existing_persistence_sets_and_prunes_the_rest() -> None:
    ruleset = build_ruleset(config(persistence={"method": "source_ip"}), L4Inputs())
    running = listing(
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "ip", "name": "bascule"}},
        {"set": {"family": "ip", "table": "bascule", "name": "persist/web/198.18.0.11/80"}},
        {"set": {"family": "ip", "table": "bascule", "name": "persist/old/198.18.0.9/80"}},
        {"chain": {"family": "ip", "table": "bascule", "name": "vs/old"}},
        {"counter": {"family": "ip", "table": "bascule", "name": "in/old"}},
        {"chain": {"family": "ip", "table": "other", "name": "vs/old"}},
    )
    commands = transaction(ruleset, running)["nftables"]
    declared = [c["add"]["set"]["name"] for c in commands if "set" in c.get("add", {})]
    assert "persist/web/198.18.0.11/80" not in declared
    assert "persist/web/198.18.0.12/80" in declared
    deleted = [c["delete"] for c in commands if "delete" in c and "table" not in c["delete"]]
    assert deleted == [
        {"chain": {"family": "ip", "table": "bascule", "name": "vs/old"}},
        {"set": {"family": "ip", "table": "bascule", "name": "persist/old/198.18.0.9/80"}},
        {"counter": {"family": "ip", "table": "bascule", "name": "in/old"}},
    ]
    assert transaction(ruleset, Listing()) == ruleset.document()


def test_a_health_change_changes_only_the_elements_that_differ() -> None:
    servers = [{"address": f"198.18.0.1{i}", "port": 80, "weight": i} for i in (1, 2, 3)]
    cfg = config(
        scheduler="weighted_round_robin",
        persistence={"method": "source_ip"},
        real_servers=servers,
    )
    env = Environment(round_robin_slots=12)
    before = build_ruleset(cfg, L4Inputs(environment=env))
    down = L4Inputs(environment=env, health={("web", "198.18.0.13:80"): False})
    after = build_ruleset(cfg, down, before)
    assert after.structure is before.structure  # a runtime change: no rule to compare
    update = in_place(before, after)
    assert update is not None
    deleted = {
        c["delete"]["element"]["name"]: c["delete"]["element"]["elem"]
        for c in update["nftables"]
        if "delete" in c
    }
    # its pin map empties; only its six slots of twelve change hands
    its = [i for i, key in enumerate(before.slot_tables["web"].slots) if key == "198.18.0.13:80"]
    assert len(its) == 6
    assert deleted == {"pin/web/198.18.0.13/80": ["tcp"], "sched/web": its}
    [fill] = [c["add"]["element"] for c in update["nftables"] if "add" in c]
    assert fill["name"] == "sched/web"
    assert [e[0] for e in fill["elem"]] == its
    assert {e[1]["goto"]["target"] for e in fill["elem"]} == {
        "rs/web/198.18.0.11/80",
        "rs/web/198.18.0.12/80",
    }
    assert in_place(after, after) == {"nftables": []}


def test_in_place_takes_the_whole_transaction_for_what_it_cannot_change() -> None:
    before = build_ruleset(config(), L4Inputs())
    # a new service's numgen map needs the prelude; DSR needs another table
    two = Configuration.model_validate(
        {
            "virtual_services": [
                *config().to_document()["virtual_services"],
                {**config().to_document()["virtual_services"][0], "name": "api", "port": 81},
            ]
        }
    )
    assert in_place(before, build_ruleset(two, L4Inputs())) is None
    dsr = build_ruleset(config(forwarding="dsr"), L4Inputs(environment=ENV))
    assert in_place(before, dsr) is None
    # another port: in place, the dispatch map's element and the servers' dnat rules
    moved = in_place(before, build_ruleset(config(port=81), L4Inputs(), before))
    assert moved is not None
    assert "prerouting" not in touched_chains(moved)
    dispatch = {"family": "ip", "table": "bascule", "name": "dispatch"}
    assert moved["nftables"][-2:] == [
        {"delete": {"element": {**dispatch, "elem": [{"concat": ["198.18.0.100", "tcp", 80]}]}}},
        {"add": {"element": {**dispatch, "elem": [[vip_key("198.18.0.100", 81), goto_web]]}}},
    ]


goto_web = {"goto": {"target": "vs/web"}}


def vip_key(address: str, port: object, protocol: str = "tcp") -> dict[str, object]:
    return {"concat": [address, protocol, port]}


def touched_chains(update: dict[str, Any]) -> set[str]:
    """The chains an update flushes or adds rules to."""
    found = set()
    for command in update["nftables"]:
        for verb, body in command.items():
            if verb == "flush" and "chain" in body:
                found.add(body["chain"]["name"])
            if verb == "add" and "rule" in body:
                found.add(body["rule"]["chain"])
    return found


def dsr_services(*services: dict[str, Any]) -> Configuration:
    """``web`` (DSR, Maglev on the source: no prelude map) and ``services``."""
    web = config(forwarding="dsr", scheduler="source_ip_hash").to_document()
    return Configuration.model_validate({"virtual_services": [*web["virtual_services"], *services]})


def test_a_dsr_service_that_comes_goes_or_moves_changes_the_dispatch_map_not_its_rule() -> None:
    api = {
        "name": "api",
        "address": "198.18.0.100",  # web's VIP, other ports
        "port": 81,
        "extra_ports": ["9000-9010"],
        "mode": "l4",
        "forwarding": "dsr",
        "scheduler": "source_ip_hash",
        "real_servers": [{"address": "198.18.0.11", "port": 81}],
    }
    inputs = L4Inputs(environment=ENV)
    one = build_ruleset(dsr_services(), inputs)
    two = build_ruleset(dsr_services(api), inputs, one)
    dispatch = {"family": "netdev", "table": "bascule", "name": "dispatch4/eth0"}
    api_keys = [vip_key("198.18.0.100", 81), vip_key("198.18.0.100", {"range": [9000, 9010]})]
    goto_api = {"goto": {"target": "vs/api"}}
    came = in_place(one, two)
    assert came is not None
    assert touched_chains(came) == {"vs/api", "rs/api/198.18.0.11/81"}  # its own chains
    assert came["nftables"][-1] == {
        "add": {"element": {**dispatch, "elem": [[key, goto_api] for key in api_keys]}}
    }
    went = in_place(two, build_ruleset(dsr_services(), inputs, two))
    assert went is not None
    assert touched_chains(went) == {"vs/api", "rs/api/198.18.0.11/81"}  # flushed to go
    assert {"delete": {"element": {**dispatch, "elem": api_keys}}} in went["nftables"]
    # web moves to another VIP: its dispatch element, nothing else
    moved = config(forwarding="dsr", scheduler="source_ip_hash", address="198.18.0.101")
    update = in_place(one, build_ruleset(moved, inputs, one))
    assert update == {
        "nftables": [
            {"delete": {"element": {**dispatch, "elem": [vip_key("198.18.0.100", 80)]}}},
            {"add": {"element": {**dispatch, "elem": [[vip_key("198.18.0.101", 80), goto_web]]}}},
        ]
    }


def test_a_server_that_leaves_takes_its_objects_with_it() -> None:
    before = build_ruleset(config(persistence={"method": "source_ip"}), L4Inputs())
    fewer = config(
        persistence={"method": "source_ip"},
        real_servers=[
            {"address": "198.18.0.11", "port": 80},
            {"address": "198.18.0.12", "port": 80},
        ],
    )
    update = in_place(before, build_ruleset(fewer, L4Inputs(), before))
    assert update is not None
    gone = [
        (kind, body["name"])
        for command in update["nftables"]
        for kind, body in command.get("delete", {}).items()
        if kind != "element"
    ]
    assert gone == [
        ("map", "pin/web/198.18.0.13/80"),
        ("chain", "rs/web/198.18.0.13/80"),
        ("set", "persist/web/198.18.0.13/80"),
        ("counter", "new/web/198.18.0.13/80"),
    ]
    flushed = [c["flush"]["chain"]["name"] for c in update["nftables"] if "flush" in c]
    assert "rs/web/198.18.0.13/80" in flushed  # emptied before its slots and itself go


def test_dsr_mac_refresh_changes_one_element() -> None:
    cfg = config(forwarding="dsr", scheduler="source_ip_hash")
    before = build_ruleset(cfg, L4Inputs(environment=ENV))
    moved = Environment(
        lb_mac=ENV.lb_mac, server_macs={**MACS, "198.18.0.12": "02:00:00:00:01:12"}, maglev_size=31
    )
    update = in_place(before, build_ruleset(cfg, L4Inputs(environment=moved), before))
    mac_map = {"family": "netdev", "table": "bascule", "name": "mac/web/198.18.0.12/80"}
    assert update == {
        "nftables": [
            {"delete": {"element": {**mac_map, "elem": ["tcp"]}}},
            {"add": {"element": {**mac_map, "elem": [["tcp", "02:00:00:00:01:12"]]}}},
        ]
    }


def test_element_changes() -> None:
    ref = {"family": "ip", "table": "bascule", "name": "m"}
    assert element_changes("ip", "m", [[0, "a"], [1, "b"]], [[0, "a"], [1, "b"]]) == []
    assert element_changes("ip", "m", [[0, "a"], [1, "b"]], [[0, "a"], [1, "c"], [2, "d"]]) == [
        {"delete": {"element": {**ref, "elem": [1]}}},
        {"add": {"element": {**ref, "elem": [[1, "c"], [2, "d"]]}}},
    ]
    assert element_changes("ip", "m", [[0, "a"]], []) == [
        {"delete": {"element": {**ref, "elem": [0]}}}
    ]


def test_prelude_declares_only_the_missing_integer_maps() -> None:
    ruleset = build_ruleset(config(), L4Inputs())
    assert prelude(ruleset, Listing()) == (
        "add table ip bascule\n"
        "add map ip bascule sched/web { typeof numgen inc mod 5040 : verdict ; }\n"
    )
    listed = listing({"map": {"family": "ip", "table": "bascule", "name": "sched/web"}})
    assert prelude(ruleset, listed) is None


def test_undo_prelude_deletes_what_the_prelude_created_only() -> None:
    ruleset = build_ruleset(config(), L4Inputs())
    ip = {"family": "ip", "name": "bascule"}
    # no table before: the table it created goes, with its maps
    assert undo_prelude(ruleset, Listing()) == {
        "nftables": [{"add": {"table": ip}}, {"delete": {"table": ip}}]
    }
    # the table was there: only the new map goes
    assert undo_prelude(ruleset, listing({"table": ip})) == {
        "nftables": [{"delete": {"map": {"family": "ip", "table": "bascule", "name": "sched/web"}}}]
    }
    # the map was there too: nothing to undo
    there = listing(
        {"table": ip}, {"map": {"family": "ip", "table": "bascule", "name": "sched/web"}}
    )
    assert undo_prelude(ruleset, there) is None


def test_removal_adds_and_deletes_each_of_our_tables() -> None:
    commands = removal()["nftables"]
    assert [(verb, body["table"]["family"]) for c in commands for verb, body in c.items()] == [
        ("add", "ip"),
        ("delete", "ip"),
        ("add", "ip6"),
        ("delete", "ip6"),
        ("add", "netdev"),
        ("delete", "netdev"),
    ]
    assert all(body["table"]["name"] == "bascule" for c in commands for body in c.values())


def test_the_table_guard_adds_one_regular_chain_of_each_table() -> None:
    both = Configuration.model_validate(
        {
            "virtual_services": [
                config().virtual_services[0].model_dump(mode="json"),
                {
                    **config(forwarding="dsr").virtual_services[0].model_dump(mode="json"),
                    "name": "dr",
                    "address": "198.18.0.101",
                },
            ]
        }
    )
    ruleset = build_ruleset(both, L4Inputs(environment=ENV))
    assert table_guard(ruleset) == [
        {"add": {"chain": {"family": family, "table": "bascule", "name": name}}}
        for family, name in (("ip", "vs/web"), ("netdev", "vs/dr"))
    ]
    assert table_guard(build_ruleset(Configuration(), L4Inputs())) == []
