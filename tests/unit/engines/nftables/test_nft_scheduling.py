"""engines/nftables/scheduling.py: the selection per scheduler and forwarding, the weights a
service schedules with, and the slot tables of numgen and Maglev."""

from __future__ import annotations

from collections import Counter

from l4_documents import ENV, config

from bascule.engines.nftables.rules import build_ruleset
from bascule.engines.nftables.scheduling import (
    DSR_SCHEDULING,
    NAT_SCHEDULING,
    Selection,
    apportion,
    round_robin_slots,
    seed,
    selection_of,
    slot_table,
    smooth_sequence,
)
from bascule.engines.nftables.view import Environment, L4Inputs, decide
from bascule.model import Mode, Scheduler


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
