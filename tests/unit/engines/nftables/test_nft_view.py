"""The decisions of engines/nftables/view.py: who is in the maps, who is left out and why, and
what cannot be expressed at L4 (the goldens show the whole ruleset)."""

from __future__ import annotations

import pytest
from l4_documents import ENV, MACS, config

from bascule.engines.nftables.view import (
    STICKY,
    Environment,
    Exclusion,
    L4Inputs,
    ViewError,
    decide,
    l4_services,
)
from bascule.model import Configuration, Forwarding, Mode, PersistenceMethod


def test_down_drained_and_disabled_servers_leave_the_maps_but_keep_their_chains() -> None:
    cfg = config(
        real_servers=[
            {"address": "198.18.0.11", "port": 80},
            {"address": "198.18.0.12", "port": 80, "state": "drain"},
            {"address": "198.18.0.13", "port": 80, "state": "disabled"},
            {"address": "198.18.0.14", "port": 80},
        ]
    )
    [web] = decide(cfg, L4Inputs(health={("web", "198.18.0.14:80"): False}))
    assert web.excluded == {
        "198.18.0.12:80": Exclusion.drain,
        "198.18.0.13:80": Exclusion.disabled,
        "198.18.0.14:80": Exclusion.down,
    }
    assert not any(reason.faulty for reason in web.excluded.values())
    assert [rs.key for rs in web.live] == ["198.18.0.11:80"]
    # the left-out servers keep their chains: coming back is a map update
    assert [rs.key for rs in web.members] == [f"198.18.0.1{i}:80" for i in (1, 2, 3, 4)]


def test_least_connection_uses_the_given_weights() -> None:
    given = {"198.18.0.11:80": 2000, "198.18.0.12:80": 1000, "198.18.0.13:80": 1000}
    inputs = L4Inputs(weights={("web", key): weight for key, weight in given.items()})
    [web] = decide(config(scheduler="least_connection"), inputs)
    assert web.weights == {"198.18.0.11:80": 2, "198.18.0.12:80": 1, "198.18.0.13:80": 1}


def test_plain_least_connection_ignores_configured_weights_until_counts_arrive() -> None:
    servers = [
        {"address": "198.18.0.11", "port": 80, "weight": 3000},
        {"address": "198.18.0.12", "port": 80, "weight": 1000},
    ]
    [plain] = decide(config(scheduler="least_connection", real_servers=servers), L4Inputs())
    assert plain.weights == {"198.18.0.11:80": 1, "198.18.0.12:80": 1}
    weighted = config(scheduler="weighted_least_connection", real_servers=servers)
    assert decide(weighted, L4Inputs())[0].weights == {"198.18.0.11:80": 3, "198.18.0.12:80": 1}


def test_fixed_weighting_keeps_the_heaviest_server_that_is_up() -> None:
    cfg = config(
        scheduler="fixed_weighting",
        real_servers=[
            {"address": "198.18.0.11", "port": 80, "weight": 10},
            {"address": "198.18.0.12", "port": 80, "weight": 30},
        ],
    )
    [web] = decide(cfg, L4Inputs())
    assert [rs.key for rs in web.live] == ["198.18.0.12:80"]
    assert web.excluded == {"198.18.0.11:80": Exclusion.standby}
    assert not Exclusion.standby.faulty  # standing by is healthy
    [failed] = decide(cfg, L4Inputs(health={("web", "198.18.0.12:80"): False}))
    assert [rs.key for rs in failed.live] == ["198.18.0.11:80"]


def test_every_persistence_method_of_l4_is_translated() -> None:
    assert set(STICKY) == {method for method in PersistenceMethod if Mode.l4 in method.modes}


def test_dsr_server_without_a_mac_is_left_out_and_reported() -> None:
    env = Environment(lb_mac="02:00:00:00:00:02", server_macs={"198.18.0.11": "02:0:0:0:0:11"})
    [web] = decide(config(forwarding="dsr"), L4Inputs(environment=env))
    assert web.table == "netdev"
    assert web.excluded == {
        "198.18.0.12:80": Exclusion.no_mac,
        "198.18.0.13:80": Exclusion.no_mac,
    }
    assert Exclusion.no_mac.faulty and "MAC" in Exclusion.no_mac.value


def test_dsr_refuses_a_port_change_per_server() -> None:
    cfg = config(forwarding="dsr", real_servers=[{"address": "198.18.0.11", "port": 8080}])
    [web] = decide(cfg, L4Inputs(environment=ENV))
    assert web.excluded == {"198.18.0.11:8080": Exclusion.dsr_port}
    assert web.members == ()


def test_a_server_of_the_other_family_has_no_chain() -> None:
    cfg = config(real_servers=[{"address": "2001:2::11", "port": 80}])
    [web] = decide(cfg, L4Inputs())
    assert web.excluded == {"[2001:2::11]:80": Exclusion.other_family}
    assert (web.family, web.table, web.members) == ("ip", "ip", ())


def test_dsr_needs_the_lb_mac() -> None:
    with pytest.raises(ViewError, match="MAC"):
        decide(config(forwarding="dsr"), L4Inputs(environment=Environment(server_macs=MACS)))


@pytest.mark.parametrize("method", ["active_cookie", "url_hash", "ssl_session_id"])
def test_l7_persistence_is_refused(method: str) -> None:
    with pytest.raises(ViewError, match="needs L7"):
        decide(config(persistence={"method": method}), L4Inputs())


def test_l7_scheduler_is_refused() -> None:
    with pytest.raises(ViewError, match="needs L7"):
        decide(config(scheduler="url_hash"), L4Inputs())


def test_only_enabled_l4_services_are_decided() -> None:
    cfg = Configuration.model_validate(
        {
            "virtual_services": [
                {"name": "l7", "address": "198.18.0.100", "port": 80},
                {
                    "name": "off",
                    "address": "198.18.0.100",
                    "port": 81,
                    "mode": "l4",
                    "enabled": False,
                },
                {"name": "nat", "address": "198.18.0.100", "port": 82, "mode": "l4"},
                {
                    "name": "dsr",
                    "address": "198.18.0.100",
                    "port": 83,
                    "mode": "l4",
                    "forwarding": "dsr",
                },
            ]
        }
    )
    assert [vs.name for vs in l4_services(cfg)] == ["nat", "dsr"]
    assert [vs.name for vs in l4_services(cfg, Forwarding.dsr)] == ["dsr"]
    assert [d.vs.name for d in decide(cfg, L4Inputs(environment=ENV))] == ["nat", "dsr"]
