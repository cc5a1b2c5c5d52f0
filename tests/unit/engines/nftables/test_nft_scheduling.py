"""engines/nftables/scheduling.py: the selection per scheduler and forwarding, the weights a
service schedules with, and the slot tables of numgen and Maglev."""

from __future__ import annotations

import itertools
import random
from collections import Counter

from l4_documents import ENV, config

from bascule.engines.nftables.rules import build_ruleset
from bascule.engines.nftables.scheduling import (
    DSR_SCHEDULING,
    NAT_SCHEDULING,
    Selection,
    apportion,
    rebalance,
    rebalanced_slots,
    round_robin_slots,
    seed,
    selection_of,
    slot_table,
    smooth_sequence,
)
from bascule.engines.nftables.view import Environment, L4Inputs, decide
from bascule.model import Configuration, Mode, Scheduler


def test_smooth_sequence_interleaves() -> None:
    assert smooth_sequence({"a": 5, "b": 1, "c": 1}) == ("a", "a", "b", "a", "c", "a", "a")
    assert smooth_sequence({"a": 1, "b": 1}) == ("a", "b")


def test_round_robin_slots_are_apportioned_to_the_weights() -> None:
    assert apportion({"a": 3, "b": 1, "c": 1}, 10) == {"a": 6, "b": 2, "c": 2}
    assert apportion({"a": 1, "b": 1, "c": 1}, 10) == {"a": 4, "b": 3, "c": 3}
    assert round_robin_slots({"a": 1, "b": 1}, 4) == ("a", "b", "a", "b")


def test_slot_tables_fill_every_slot_and_are_empty_without_a_live_server() -> None:
    weights = {"a": 3, "b": 1}
    numgen = slot_table(Selection.round_robin, weights, 8)
    assert Counter(numgen) == {"a": 6, "b": 2}
    maglev = slot_table(Selection.flow_maglev, weights, 31)
    assert len(maglev) == 31 and set(maglev) == {"a", "b"}
    assert slot_table(Selection.source_maglev, {}, 31) == ()


def test_round_robin_ignores_weights_and_weighted_follows_them() -> None:
    servers = [
        {"address": "198.18.0.11", "port": 80, "weight": 3000},
        {"address": "198.18.0.12", "port": 80, "weight": 1000},
    ]
    [weighted] = decide(config(scheduler="weighted_round_robin", real_servers=servers), L4Inputs())
    assert weighted.weights == {"198.18.0.11:80": 3, "198.18.0.12:80": 1}
    [plain] = decide(config(real_servers=servers), L4Inputs())
    assert plain.weights == {"198.18.0.11:80": 1, "198.18.0.12:80": 1}
    ruleset = build_ruleset(config(), L4Inputs(environment=Environment(round_robin_slots=6)))
    targets = [element[1]["goto"]["target"] for element in ruleset.maps[("ip", "sched/web")]]
    assert (
        targets == ["rs/web/198.18.0.11/80", "rs/web/198.18.0.12/80", "rs/web/198.18.0.13/80"] * 2
    )


def test_every_scheduler_of_l4_has_a_selection_in_each_forwarding() -> None:
    l4 = {scheduler for scheduler in Scheduler if Mode.l4 in scheduler.modes}
    assert set(NAT_SCHEDULING) == l4
    assert set(DSR_SCHEDULING) == l4


def test_dsr_maps_every_scheduler_onto_maglev_and_says_so() -> None:
    for scheduler, selection in DSR_SCHEDULING.items():
        cfg = config(forwarding="dsr", scheduler=scheduler.value)
        assert selection_of(cfg.virtual_services[0]) is selection
        view = build_ruleset(cfg, L4Inputs(environment=ENV)).services["web"]
        assert view.selection is selection
        assert view.table == "netdev"
        assert selection is Selection.fixed or selection.maglev
    assert DSR_SCHEDULING[Scheduler.round_robin] is Selection.flow_maglev


def test_an_l7_scheduler_has_no_selection() -> None:
    assert selection_of(config(scheduler="url_hash").virtual_services[0]) is None


def test_the_jhash_seed_is_fixed_per_service() -> None:
    web, other = config().virtual_services[0], config(name="other").virtual_services[0]
    assert seed(web) == seed(config().virtual_services[0])
    assert seed(web) != seed(other)


def moved(before: tuple[str, ...], after: tuple[str, ...]) -> int:
    return sum(a != b for a, b in zip(before, after, strict=True))


def test_rebalanced_slots_move_only_what_the_new_shares_need() -> None:
    weights = {f"s{i}": 1 for i in range(100)} | {"s99": 3}
    base = round_robin_slots(weights, 5040)
    heavier = {**weights, "s0": 2}
    after = rebalanced_slots(base, heavier, 5040)
    assert Counter(after) == Counter(apportion(heavier, 5040))  # the same shares as afresh
    assert moved(base, after) == apportion(heavier, 5040)["s0"] - base.count("s0")
    assert moved(base, round_robin_slots(heavier, 5040)) > 4000  # afresh: nearly every slot
    grown = {**weights, "new": 1}
    added = rebalanced_slots(base, grown, 5040)
    assert Counter(added) == Counter(apportion(grown, 5040))
    gained = [slot for slot, name in enumerate(added) if name == "new"]
    assert moved(base, added) == len(gained) == apportion(grown, 5040)["new"]
    # spread over the ring, not a run of neighbours
    assert max(b - a for a, b in itertools.pairwise(gained)) < 4 * 5040 // len(gained)
    assert gained[-1] - gained[0] > 0.9 * 5040
    assert rebalanced_slots(base, weights, 5040) == base  # the same weights: nothing moves
    # the moved slots come with the table: the map update's elements, nothing compared
    assert rebalance(base, heavier, 5040)[1] == tuple(
        slot for slot, (a, b) in enumerate(zip(base, after, strict=True)) if a != b
    )
    assert rebalance(base, dict.fromkeys(weights, 1), 5040)[1] is None  # afresh: unknown


def test_rebalanced_slots_keep_the_shares_exact_over_any_history() -> None:
    rng = random.Random(15)
    names = [f"s{i}" for i in range(12)]
    table = round_robin_slots({"s0": 1}, 60)
    for _ in range(200):
        weights = {name: rng.randint(1, 9) for name in rng.sample(names, rng.randint(1, 12))}
        before, table = table, rebalanced_slots(table, weights, 60)
        shares = apportion(weights, 60)
        assert Counter(table) == Counter(shares)
        if len(set(weights.values())) == 1:
            assert table == round_robin_slots(weights, 60)  # equal: the strict rotation
            continue
        kept = sum(min(before.count(name), count) for name, count in shares.items())
        assert moved(before, table) == 60 - kept  # the least any table with these shares moves


def test_rebalanced_slots_start_afresh_without_a_table_of_their_size_or_for_equal_weights() -> None:
    rotation = round_robin_slots({"a": 1, "b": 1, "c": 1}, 6)
    assert rebalanced_slots(("c", "c", "a", "b", "a", "b"), {"a": 5, "b": 5, "c": 5}, 6) == rotation
    weights = {"a": 3, "b": 1}
    assert rebalanced_slots((), weights, 8) == round_robin_slots(weights, 8)
    assert rebalanced_slots(("a",) * 4, weights, 8) == round_robin_slots(weights, 8)
    assert slot_table(Selection.round_robin, weights, 8, ("b",) * 8).count("b") == 2


def test_a_build_starts_from_the_scheduling_maps_that_run() -> None:
    env = Environment(round_robin_slots=5040, maglev_size=31)

    def weighted(first: int) -> Configuration:
        servers = [{"address": f"198.18.0.1{i}", "port": 80, "weight": 1} for i in (1, 2, 3)]
        servers[0]["weight"] = first
        return config(scheduler="weighted_round_robin", real_servers=servers)

    before = build_ruleset(weighted(1), L4Inputs(environment=env))
    heavier = weighted(2)
    after = build_ruleset(heavier, L4Inputs(environment=env), before)
    old, new = before.slot_tables["web"].slots, after.slot_tables["web"].slots
    assert moved(old, new) == 2520 - 1680  # s1 from a third of the slots to half of them
    again = build_ruleset(heavier, L4Inputs(environment=env), after)
    assert again.slot_tables["web"] is after.slot_tables["web"]  # nothing rebuilt


def test_a_maglev_table_comes_back_when_a_servers_health_flaps() -> None:
    env = ENV
    dsr = config(forwarding="dsr")
    up = build_ruleset(dsr, L4Inputs(environment=env))
    down = L4Inputs(environment=env, health={("web", "198.18.0.12:80"): False})
    without = build_ruleset(dsr, down, up)
    assert without.slot_tables["web"].elements != up.slot_tables["web"].elements
    back = build_ruleset(dsr, L4Inputs(environment=env), without)
    # the very table that ran before the flap: no Maglev table computed, few slots compared
    assert back.slot_tables["web"].elements is up.slot_tables["web"].elements
    assert build_ruleset(dsr, down, back).slot_tables["web"].elements is (
        without.slot_tables["web"].elements
    )
