"""engines/nftables/transaction.py: the listing of our tables read once, and the transactions
against what runs (full, map update, prelude and its undoing, removal)."""

from __future__ import annotations

import json

from l4_documents import ENV, MACS, config

from bascule.engines.nftables.rules import build_ruleset
from bascule.engines.nftables.transaction import (
    CounterValue,
    Listing,
    map_update,
    prelude,
    removal,
    transaction,
    undo_prelude,
)
from bascule.engines.nftables.view import Environment, L4Inputs


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
    mac_map = {"family": "netdev", "table": "bascule", "name": "mac/web/198.18.0.12/80"}
    assert update == {
        "nftables": [
            {"flush": {"map": mac_map}},
            {"add": {"element": {**mac_map, "elem": [["tcp", "02:00:00:00:01:12"]]}}},
        ]
    }


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
