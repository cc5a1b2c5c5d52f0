"""plan(desired, observed): the smallest set of actions, compared as values."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.errors import EngineError
from bascule.model import Configuration, RealServerState, parse_document
from bascule.reconcile.actions import (
    ChangeServers,
    EnsureVip,
    RemoveVip,
    ReplaceConfig,
    SetState,
    SetWeight,
)
from bascule.reconcile.planner import (
    FullPlan,
    Observed,
    Plan,
    ServerRuntime,
    apply_runtime_actions,
    changed_services,
    desired_runtime,
    desired_vips,
    fixed_weighting_order,
    plan,
    plan_reload,
)

MAX_WEIGHT = 256
CHANGED = "the configuration changed beyond weights and states"


def rs(last: int, weight: int = 1000, **fields: Any) -> dict[str, Any]:
    return {"address": f"198.18.0.{last}", "port": 80, "weight": weight, **fields}


def vs(
    name: str = "web",
    *servers: dict[str, Any],
    address: str = "198.18.0.100",
    port: int = 80,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "address": address,
        "port": port,
        "real_servers": list(servers) or [rs(4), rs(5)],
        **fields,
    }


def config(*services: dict[str, Any]) -> Configuration:
    return parse_document({"virtual_services": list(services)})


def running(applied: Configuration) -> Observed:
    """What a healthy engine reports after ``applied`` was loaded."""
    return Observed(
        applied=applied,
        servers=desired_runtime(applied, max_weight=MAX_WEIGHT),
        vips=frozenset(desired_vips(applied)),
    )


def plan_of(desired: Configuration, observed: Observed) -> Plan:
    return plan(desired, observed, max_weight=MAX_WEIGHT)


WRR = {"scheduler": "weighted_round_robin"}


# -- first apply and no change ------------------------------------------------------------------


def test_first_apply_adds_the_vips_then_replaces_the_config() -> None:
    desired = config(vs("web"), vs("api", address="198.18.0.101", interface="eth1"))
    assert plan_of(desired, Observed(applied=None)).actions == (
        EnsureVip(address="198.18.0.100", interface=None),
        EnsureVip(address="198.18.0.101", interface="eth1"),
        ReplaceConfig(config=desired, reason="no configuration is running yet"),
    )


def test_first_apply_of_an_empty_configuration_still_starts_the_engine() -> None:
    empty = Configuration()
    assert plan_of(empty, Observed(applied=None)).actions == (
        ReplaceConfig(config=empty, reason="no configuration is running yet"),
    )


def test_a_vip_already_there_is_not_added_again() -> None:
    desired = config(vs("web"))
    observed = Observed(applied=None, vips=frozenset({"198.18.0.100"}))
    assert plan_of(desired, observed).actions == (
        ReplaceConfig(config=desired, reason="no configuration is running yet"),
    )


@pytest.mark.parametrize(
    "desired",
    [
        Configuration(),
        config(vs("web")),
        config(vs("web", **WRR), vs("api", rs(6, 3000), rs(7), port=81, **WRR)),
        config(vs("web", rs(4, 3000), rs(5, 1000, state="drain"), rs(6, state="disabled"), **WRR)),
    ],
    ids=["empty", "one service", "two services", "states"],
)
def test_identical_is_an_empty_plan(desired: Configuration) -> None:
    result = plan_of(desired, running(desired))
    assert result == Plan(actions=())
    assert result.empty
    assert not result.reloads


def test_the_same_document_parsed_twice_is_identical() -> None:
    document = {"virtual_services": [vs("web", **WRR)]}
    assert plan_of(parse_document(document), running(parse_document(document))).empty


# -- weights ------------------------------------------------------------------------------------


def test_a_weight_change_under_weighted_round_robin_is_one_runtime_command() -> None:
    before = config(vs("web", rs(4, 1000), rs(5, 1000), **WRR))
    after = config(vs("web", rs(4, 3000), rs(5, 1000), **WRR))
    result = plan_of(after, running(before))
    assert result.actions == (SetWeight(vs="web", server="198.18.0.4:80", weight=3),)
    assert not result.reloads


def test_a_weight_change_can_change_the_engine_weight_of_the_others() -> None:
    # 3000:1000 is 3:1 and 3000:1500 is 2:1: the first server's engine weight goes 3 -> 2
    # although its own configured weight did not change.
    before = config(vs("web", rs(4, 3000), rs(5, 1000), **WRR))
    after = config(vs("web", rs(4, 3000), rs(5, 1500), **WRR))
    assert plan_of(after, running(before)).actions == (
        SetWeight(vs="web", server="198.18.0.4:80", weight=2),
    )
    after = config(vs("web", rs(4, 2000), rs(5, 3000), **WRR))
    assert plan_of(after, running(before)).actions == (
        SetWeight(vs="web", server="198.18.0.4:80", weight=2),
        SetWeight(vs="web", server="198.18.0.5:80", weight=3),
    )


def test_a_proportional_weight_change_is_no_change_for_the_engine() -> None:
    before = config(vs("web", rs(4, 3), rs(5, 1), **WRR))
    after = config(vs("web", rs(4, 3000), rs(5, 1000), **WRR))
    assert plan_of(after, running(before)).empty


def test_weights_are_scaled_to_the_engine_ceiling() -> None:
    before = config(vs("web", rs(4, 1000), rs(5, 1000), **WRR))
    after = config(vs("web", rs(4, 65535), rs(5, 1), **WRR))
    assert plan_of(after, running(before)).actions == (
        SetWeight(vs="web", server="198.18.0.4:80", weight=256),
    )


@pytest.mark.parametrize("scheduler", ["round_robin", "least_connection"])
def test_a_weight_change_under_an_unweighted_scheduler_is_an_empty_plan(scheduler: str) -> None:
    before = config(vs("web", rs(4, 1000), rs(5, 1000), scheduler=scheduler))
    after = config(vs("web", rs(4, 3000), rs(5, 1000), scheduler=scheduler))
    assert plan_of(after, running(before)).empty


def test_a_scheduler_change_reloads() -> None:
    before = config(vs("web", rs(4, 3000), rs(5, 1000)))
    after = config(vs("web", rs(4, 3000), rs(5, 1000), **WRR))
    assert plan_of(after, running(before)).actions == (ReplaceConfig(config=after, reason=CHANGED),)


def test_a_reload_is_planned_without_observing_only_for_a_structural_change() -> None:
    before = config(vs("web", rs(4, 3000), rs(5, 1000)))
    after = config(vs("web", rs(4, 3000), rs(5, 1000), **WRR))
    weights = config(vs("web", rs(4, 1000), rs(5, 1000)))
    assert plan_reload(after, before) == plan_of(after, running(before))
    assert plan_reload(weights, before) is None  # runtime commands: the engine is observed
    assert plan_reload(after, None) is None  # nothing recorded as running: observed too


def test_an_engine_that_changes_servers_at_runtime_is_asked_before_a_reload() -> None:
    before = config(vs("web", rs(4), rs(5)), vs("api", rs(6), port=81))
    after = config(vs("web", rs(4), rs(5), rs(7)), before.virtual_services[1].model_dump())
    asked: list[tuple[Configuration, Configuration]] = []

    def at_runtime(running: Configuration, desired: Configuration) -> ChangeServers | None:
        asked.append((running, desired))
        return ChangeServers(config=desired, added=(("web", "198.18.0.7:80"),))

    runtime_plan = plan_reload(after, before, server_changes=at_runtime)
    assert runtime_plan == Plan(
        actions=(ChangeServers(config=after, added=(("web", "198.18.0.7:80"),)),)
    )
    assert asked == [(before, after)]
    assert not runtime_plan.reloads and runtime_plan.replaces
    # the engine says no: a reload, as without it
    refused = plan_reload(after, before, server_changes=lambda running, desired: None)
    assert refused == plan_reload(after, before)
    assert refused is not None and refused.reloads and refused.replaces
    # nothing structural: never asked
    assert plan_reload(before, before, server_changes=at_runtime) is None
    assert len(asked) == 1


def test_a_runtime_change_of_servers_carries_the_weights_it_rescales() -> None:
    before = config(vs("web", rs(4, 2000), rs(5, 4000), **WRR))
    after = config(vs("web", rs(4, 2000), rs(5, 4000), rs(7, 1000), **WRR))
    change = ChangeServers(config=after, added=(("web", "198.18.0.7:80"),))
    found = plan_reload(
        after, before, server_changes=lambda running, desired: change, max_weight=MAX_WEIGHT
    )
    # 2000:4000 was 1:2 in engine units; beside 1000 it is 2:4:1
    assert found == Plan(
        actions=(
            change,
            SetWeight(vs="web", server="198.18.0.4:80", weight=2),
            SetWeight(vs="web", server="198.18.0.5:80", weight=4),
        )
    )
    whole = FullPlan(ensure=(), engines=(("haproxy", found),), remove=())
    assert whole.settles and not whole.reloads
    reload = plan_reload(after, before)
    assert reload is not None
    assert not FullPlan(ensure=(), engines=(("haproxy", reload),), remove=()).settles


def test_changed_services_are_the_pairs_that_differ_in_structure() -> None:
    before = config(vs("web", rs(4)), vs("api", rs(6), port=81))
    weight = config(vs("web", rs(4, 2000)), vs("api", rs(6), port=81))
    added = config(vs("web", rs(4)), vs("api", rs(6), rs(7), port=81))
    assert changed_services(weight, before) == []
    assert changed_services(added, before) == [
        (added.virtual_services[1], before.virtual_services[1])
    ]
    assert changed_services(config(vs("web", rs(4))), before) is None  # a service less
    renamed = config(vs("web", rs(4)), vs("app", rs(6), port=81))
    assert changed_services(renamed, before) is None


# -- states -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("enabled", "drain"),
        ("enabled", "disabled"),
        ("drain", "enabled"),
        ("disabled", "enabled"),
        ("drain", "disabled"),
        ("disabled", "drain"),
    ],
)
def test_a_state_change_is_one_runtime_command(old: str, new: str) -> None:
    before = config(vs("web", rs(4), rs(5, state=old), **WRR))
    after = config(vs("web", rs(4), rs(5, state=new), **WRR))
    assert plan_of(after, running(before)).actions == (
        SetState(vs="web", server="198.18.0.5:80", state=RealServerState(new)),
    )


def test_enable_from_drain_restores_the_weight_the_engine_lost() -> None:
    # Draining sets the engine weight to 0 (HAProxy's "set server ... state drain"); enabling
    # again needs the configured weight back.
    desired = config(vs("web", rs(4, 3000), rs(5, 1000), **WRR))
    observed = Observed(
        applied=config(vs("web", rs(4, 3000), rs(5, 1000, state="drain"), **WRR)),
        servers={
            ("web", "198.18.0.4:80"): ServerRuntime(weight=3, state=RealServerState.enabled),
            ("web", "198.18.0.5:80"): ServerRuntime(weight=0, state=RealServerState.drain),
        },
        vips=frozenset({"198.18.0.100"}),
    )
    assert plan_of(desired, observed).actions == (
        SetState(vs="web", server="198.18.0.5:80", state=RealServerState.enabled),
        SetWeight(vs="web", server="198.18.0.5:80", weight=1),
    )


def test_a_weight_change_of_a_drained_server_waits_until_it_is_enabled() -> None:
    before = config(vs("web", rs(4, 3000), rs(5, 1000, state="drain"), **WRR))
    drained = config(vs("web", rs(4, 3000), rs(5, 2000, state="drain"), **WRR))
    # 3:1 becomes 3:2, but only the drained server's engine weight would change
    assert plan_of(drained, running(before)).empty
    enabled = config(vs("web", rs(4, 3000), rs(5, 2000), **WRR))
    assert plan_of(enabled, running(before)).actions == (
        SetState(vs="web", server="198.18.0.5:80", state=RealServerState.enabled),
        SetWeight(vs="web", server="198.18.0.5:80", weight=2),
    )


def test_state_and_weight_change_together() -> None:
    before = config(vs("web", rs(4, 1000), rs(5, 1000, state="drain"), **WRR))
    after = config(vs("web", rs(4, 1000), rs(5, 2000), **WRR))
    assert plan_of(after, running(before)).actions == (
        SetState(vs="web", server="198.18.0.5:80", state=RealServerState.enabled),
        SetWeight(vs="web", server="198.18.0.5:80", weight=2),
    )


def test_servers_taking_traffic_come_before_servers_leaving() -> None:
    # "drain 4, enable 6" in document order would leave the pool (5 drained) without a
    # server between the two runtime commands: a 503 for a request arriving then
    servers = (rs(4), rs(5, state="drain"), rs(6, 2000, state="drain"), rs(7, state="disabled"))
    before = config(vs("web", *servers, **WRR))
    after = config(
        vs("web", rs(4, state="drain"), rs(5, state="drain"), rs(6, 2000), rs(7, 3000), **WRR)
    )
    assert plan_of(after, running(before)).actions == (
        SetState(vs="web", server="198.18.0.6:80", state=RealServerState.enabled),
        SetState(vs="web", server="198.18.0.7:80", state=RealServerState.enabled),
        SetWeight(vs="web", server="198.18.0.7:80", weight=3),
        SetState(vs="web", server="198.18.0.4:80", state=RealServerState.drain),
    )


# -- structural changes -------------------------------------------------------------------------

STRUCTURAL: list[tuple[str, dict[str, Any]]] = [
    ("new real server", vs("web", rs(4), rs(5), rs(6))),
    ("removed real server", vs("web", rs(4))),
    ("real server port", vs("web", rs(4), {**rs(5), "port": 8080})),
    ("service port", vs("web", port=8080)),
    ("extra port", vs("web", extra_ports=[8080])),
    ("check interval", vs("web", check={"interval": 5})),
    ("check type", vs("web", check={"type": "tcp"})),
    ("max_connections", vs("web", rs(4), rs(5, max_connections=10))),
    ("critical", vs("web", rs(4), rs(5, critical=True))),
    ("persistence timeout", vs("web", persistence={"timeout": 60})),
    ("disabled service", vs("web", enabled=False)),
]


@pytest.mark.parametrize("changed", [pytest.param(d, id=i) for i, d in STRUCTURAL])
def test_a_structural_change_replaces_the_config(changed: dict[str, Any]) -> None:
    before = config(vs("web"))
    after = config(changed)
    assert plan_of(after, running(before)).actions == (ReplaceConfig(config=after, reason=CHANGED),)


def test_a_reload_carries_every_weight_and_state_so_no_runtime_action_follows() -> None:
    before = config(vs("web", rs(4), rs(5), **WRR))
    after = config(vs("web", rs(4, 3000, state="drain"), rs(5), rs(6), **WRR))
    result = plan_of(after, running(before))
    assert result.actions == (ReplaceConfig(config=after, reason=CHANGED),)
    assert result.reloads


def test_an_engine_that_lacks_a_server_reloads() -> None:
    desired = config(vs("web"))
    observed = running(desired)
    servers = dict(observed.servers)
    del servers[("web", "198.18.0.5:80")]
    lacking = Observed(applied=desired, servers=servers, vips=observed.vips)
    assert plan_of(desired, lacking).actions == (
        ReplaceConfig(
            config=desired, reason="the engine does not know real server 198.18.0.5:80 of web"
        ),
    )


def test_servers_the_engine_knows_beyond_the_document_are_ignored() -> None:
    desired = config(vs("web"))
    observed = running(desired)
    extra = {
        **observed.servers,
        ("gone", "198.18.0.9:80"): ServerRuntime(weight=1, state=RealServerState.enabled),
    }
    assert plan_of(desired, Observed(applied=desired, servers=extra, vips=observed.vips)).empty


# -- fixed_weighting ---------------------------------------------------------------------------

FIXED = {"scheduler": "fixed_weighting"}


def test_fixed_weighting_order() -> None:
    service = config(vs("web", rs(4, 10), rs(5, 30), rs(6, 30), **FIXED)).virtual_services[0]
    assert fixed_weighting_order(service) == ["198.18.0.5:80", "198.18.0.6:80", "198.18.0.4:80"]


def test_fixed_weighting_a_weight_change_that_keeps_the_order_is_runtime_only() -> None:
    before = config(vs("web", rs(4, 3000), rs(5, 1000), **FIXED))
    after = config(vs("web", rs(4, 2000), rs(5, 1000), **FIXED))
    assert plan_of(after, running(before)).actions == (
        SetWeight(vs="web", server="198.18.0.4:80", weight=2),
    )


def test_fixed_weighting_a_weight_change_that_reorders_reloads() -> None:
    # 198.18.0.5 becomes the active server: HAProxy's backup flags change, a reload is needed
    before = config(vs("web", rs(4, 3000), rs(5, 1000), **FIXED))
    after = config(vs("web", rs(4, 1000), rs(5, 3000), **FIXED))
    assert plan_of(after, running(before)).actions == (ReplaceConfig(config=after, reason=CHANGED),)


def test_fixed_weighting_a_tie_keeps_the_document_order() -> None:
    before = config(vs("web", rs(4, 3000), rs(5, 1000), **FIXED))
    after = config(vs("web", rs(4, 1000), rs(5, 1000), **FIXED))
    assert plan_of(after, running(before)).actions == (
        SetWeight(vs="web", server="198.18.0.4:80", weight=1),
    )


def test_fixed_weighting_reordering_the_document_on_a_tie_reloads() -> None:
    before = config(vs("web", rs(4), rs(5), **FIXED))
    after = config(vs("web", rs(5), rs(4), **FIXED))
    assert plan_of(after, running(before)).reloads


# -- VIPs ---------------------------------------------------------------------------------------


def test_a_new_service_on_a_new_vip_adds_it_before_the_reload() -> None:
    before = config(vs("web"))
    after = config(vs("web"), vs("api", address="198.18.0.101"))
    assert plan_of(after, running(before)).actions == (
        EnsureVip(address="198.18.0.101", interface=None),
        ReplaceConfig(config=after, reason=CHANGED),
    )


def test_a_removed_service_removes_its_vip_after_the_reload() -> None:
    before = config(vs("web"), vs("api", address="198.18.0.101"))
    after = config(vs("web"))
    assert plan_of(after, running(before)).actions == (
        ReplaceConfig(config=after, reason=CHANGED),
        RemoveVip(address="198.18.0.101"),
    )


def test_a_moved_service_adds_the_new_vip_first_and_removes_the_old_one_last() -> None:
    before = config(vs("web"))
    after = config(vs("web", address="2001:db8::100"))
    assert plan_of(after, running(before)).actions == (
        EnsureVip(address="2001:db8::100", interface=None),
        ReplaceConfig(config=after, reason=CHANGED),
        RemoveVip(address="198.18.0.100"),
    )


def test_a_vip_shared_by_two_services_stays_while_one_uses_it() -> None:
    before = config(vs("web"), vs("api", port=81))
    after = config(vs("web"))
    assert plan_of(after, running(before)).actions == (ReplaceConfig(config=after, reason=CHANGED),)


def test_removed_vips_come_in_a_stable_order() -> None:
    observed = Observed(
        applied=Configuration(), vips=frozenset({"198.18.0.103", "198.18.0.101", "198.18.0.102"})
    )
    assert plan_of(Configuration(), observed).actions == (
        RemoveVip(address="198.18.0.101"),
        RemoveVip(address="198.18.0.102"),
        RemoveVip(address="198.18.0.103"),
    )


def test_a_missing_vip_is_added_back_without_a_reload() -> None:
    desired = config(vs("web"))
    observed = running(desired)
    assert plan_of(desired, Observed(applied=desired, servers=observed.servers)).actions == (
        EnsureVip(address="198.18.0.100", interface=None),
    )


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])
def test_a_wildcard_address_gets_no_vip(wildcard: str) -> None:
    desired = config(vs("any", address=wildcard))
    assert desired_vips(desired) == {}
    assert plan_of(desired, Observed(applied=None)).actions == (
        ReplaceConfig(config=desired, reason="no configuration is running yet"),
    )


def test_desired_vips_keep_a_named_interface() -> None:
    desired = config(vs("web"), vs("api", port=81, interface="eth1"))
    assert desired_vips(desired) == {"198.18.0.100": "eth1"}


# -- disabled services -------------------------------------------------------------------------


def test_a_disabled_service_gets_no_runtime_actions() -> None:
    before = config(vs("web", rs(4, 1000), rs(5, 1000), enabled=False, **WRR))
    after = config(vs("web", rs(4, 3000), rs(5, 1000, state="drain"), enabled=False, **WRR))
    observed = running(before)
    assert observed.servers == {}
    assert plan_of(after, observed).empty


def test_desired_runtime_skips_disabled_services() -> None:
    desired = config(vs("web", **WRR), vs("off", port=81, enabled=False, **WRR))
    assert desired_runtime(desired, max_weight=MAX_WEIGHT) == {
        ("web", "198.18.0.4:80"): ServerRuntime(weight=1, state=RealServerState.enabled),
        ("web", "198.18.0.5:80"): ServerRuntime(weight=1, state=RealServerState.enabled),
    }


def test_ipv6_servers_are_keyed_in_brackets() -> None:
    desired = config(vs("v6", {"address": "2001:DB8::4", "port": 80}, address="2001:db8::100"))
    assert list(desired_runtime(desired, max_weight=MAX_WEIGHT)) == [("v6", "[2001:db8::4]:80")]


# -- a runtime table after runtime actions (FakeEngine and the nftables driver keep one) --------

A, B = ("web", "198.18.0.4:80"), ("web", "198.18.0.5:80")
ENABLED = ServerRuntime(weight=3, state=RealServerState.enabled)


def test_runtime_actions_change_one_field_of_one_server() -> None:
    table = {A: ENABLED, B: ENABLED}
    after = apply_runtime_actions(
        table,
        (
            SetWeight(vs="web", server=A[1], weight=7),
            SetState(vs="web", server=B[1], state=RealServerState.drain),
        ),
    )
    assert after == {
        A: ServerRuntime(weight=7, state=RealServerState.enabled),
        B: ServerRuntime(weight=3, state=RealServerState.drain),
    }
    assert table == {A: ENABLED, B: ENABLED}  # a new table; the old one is untouched


def test_a_runtime_action_for_a_server_the_engine_lacks_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match=r"nftables runs no real server 198\.18\.0\.9:80 in web"):
        apply_runtime_actions(
            {A: ENABLED},
            (SetWeight(vs="web", server="198.18.0.9:80", weight=1),),
            engine="nftables",
        )


# -- the plan of a whole document over several engines ------------------------------------------


def test_a_full_plan_runs_the_vips_around_the_engines_and_names_each_engine() -> None:
    runtime = Plan(actions=(SetWeight(vs="web", server=A[1], weight=2),))
    full = FullPlan(
        ensure=(EnsureVip(address="198.18.0.100"),),
        engines=(("haproxy", runtime), ("nftables", Plan(actions=()))),
        remove=(RemoveVip(address="198.18.0.101"),),
    )
    assert (full.empty, full.reloads) == (False, False)
    assert full.descriptions() == (
        "add VIP 198.18.0.100",
        "haproxy: set weight of web/198.18.0.4:80 to 2 (runtime, no reload)",
        "remove VIP 198.18.0.101",
    )
    assert FullPlan(ensure=(), engines=(("haproxy", Plan(actions=())),), remove=()).empty
