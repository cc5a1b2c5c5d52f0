"""Golden files of the nft JSON ruleset for every mode x scheduler x persistence, and
`nft -c` accepting each one inside a throwaway network namespace (after its text prelude, the
maps nft's JSON cannot declare). ``update-*`` files are in-place transactions
(``transaction.in_place``) from a base ruleset, built from the base's scheduling maps as the
engine builds them: map updates (weights, health, MACs) and structural changes (a real server
added or removed); `nft -c` checks each against its base ruleset, loaded for real in the
namespace.

Regenerate after an intended change with
``BASCULE_UPDATE_GOLDEN=1 pytest tests/unit/engines/nftables`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from nft_namespace import nft

from bascule.engines.nftables.rules import Ruleset, build_ruleset
from bascule.engines.nftables.transaction import Listing, in_place, prelude
from bascule.engines.nftables.view import Environment, L4Inputs
from bascule.model import Configuration

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "nftables"
UPDATE_GOLDEN = os.environ.get("BASCULE_UPDATE_GOLDEN") == "1"

MODES = ("nat_routed", "nat_one_armed", "dsr")
SCHEDULERS = (
    "round_robin",
    "weighted_round_robin",
    "least_connection",
    "weighted_least_connection",
    "fixed_weighting",
    "source_ip_hash",
)
PERSISTENCE = ("none", "source_ip")
ENVIRONMENT = Environment(
    interface="eth0",
    lb_mac="02:00:00:00:00:02",
    server_macs={
        "198.18.0.11": "02:00:00:00:00:11",
        "198.18.0.12": "02:00:00:00:00:12",
        "198.18.0.13": "02:00:00:00:00:13",
    },
    source_addresses={4: "198.18.0.2"},
    maglev_size=31,  # a small prime keeps the files readable; production uses 65537
    round_robin_slots=10,  # 3:1:1 fills it exactly; production uses 5040
)


def service(mode: str, scheduler: str, persistence: str, protocol: str = "tcp") -> dict[str, Any]:
    dsr = mode == "dsr"
    one_armed = {"subnet_originating": True} if mode == "nat_one_armed" else {}
    return {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "extra_ports": ["9000-9010"] if dsr else [8080, "9000-9010"],
        "protocol": protocol,
        "mode": "l4",
        "forwarding": "dsr" if dsr else "nat",
        "scheduler": scheduler,
        "persistence": {"method": persistence, "timeout": 600, "source_mask": 24},
        "real_servers": [
            {"address": "198.18.0.11", "port": 80, "weight": 3000},
            {"address": "198.18.0.12", "port": 80 if dsr else 8080, "weight": 1000},
            {"address": "198.18.0.13", "port": 80, "weight": 1000},
        ],
        **one_armed,
    }


def inputs_for(mode: str, **extra: Any) -> L4Inputs:
    return L4Inputs(environment=ENVIRONMENT, **extra)


def golden(ruleset: Ruleset) -> dict[str, Any]:
    """What a golden file holds: the text prelude (as lines) and the JSON transaction."""
    text = prelude(ruleset, Listing()) or ""
    return {"prelude": text.splitlines(), **ruleset.document()}


RULESETS: dict[str, Ruleset] = {}


def cases() -> dict[str, dict[str, Any]]:
    """case name -> the golden content (prelude and ruleset document)."""
    found: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        for scheduler in SCHEDULERS:
            for persistence in PERSISTENCE:
                config = Configuration.model_validate(
                    {"virtual_services": [service(mode, scheduler, persistence)]}
                )
                name = f"{mode}-{scheduler}-{persistence}"
                RULESETS[name] = build_ruleset(config, inputs_for(mode))
                found[name] = golden(RULESETS[name])
    for mode in MODES:
        config = Configuration.model_validate(
            {"virtual_services": [service(mode, "source_ip_hash", "source_ip", "udp")]}
        )
        name = f"{mode}-udp-source_ip_hash-source_ip"
        RULESETS[name] = build_ruleset(config, inputs_for(mode))
        found[name] = golden(RULESETS[name])
    down = inputs_for("nat_routed", health={("web", "198.18.0.12:8080"): False})
    config = Configuration.model_validate(
        {"virtual_services": [service("nat_routed", "weighted_round_robin", "source_ip")]}
    )
    RULESETS["nat_routed-one_server_down"] = build_ruleset(config, down)
    found["nat_routed-one_server_down"] = golden(RULESETS["nat_routed-one_server_down"])
    ipv6 = {
        "name": "web6",
        "address": "2001:db8::100",
        "port": 443,
        "mode": "l4",
        "scheduler": "round_robin",
        "persistence": {"method": "source_ip", "source_mask6": 64},
        "real_servers": [
            {"address": "2001:db8::11", "port": 8443},
            {"address": "2001:db8::12", "port": 443},
        ],
    }
    config = Configuration.model_validate({"virtual_services": [ipv6]})
    RULESETS["nat_routed-ipv6"] = build_ruleset(config, L4Inputs(environment=ENVIRONMENT))
    found["nat_routed-ipv6"] = golden(RULESETS["nat_routed-ipv6"])
    for persistence in PERSISTENCE:
        # not_available.sorry_server: its chain is always there, in the maps only when no
        # real server is (update-nat_routed-sorry_*)
        config = Configuration.model_validate({"virtual_services": [sorry(persistence)]})
        name = f"nat_routed-sorry_server-{persistence}"
        RULESETS[name] = build_ruleset(config, inputs_for("nat_routed"))
        found[name] = golden(RULESETS[name])
    for mode in ("nat_one_armed", "dsr"):
        config = Configuration.model_validate({"virtual_services": [dual_stack(mode)]})
        RULESETS[f"{mode}-dual_stack"] = build_ruleset(config, L4Inputs(environment=DUAL))
        found[f"{mode}-dual_stack"] = golden(RULESETS[f"{mode}-dual_stack"])
    return found


# A dual-stack service (address + address6): NAT sends each VIP's clients to the real
# servers of its family, in the ip and ip6 tables; DSR forwards both VIPs to every server,
# the IPv6 VIP's objects named "<name>.v6" in the one netdev table.
DUAL = Environment(
    **{
        **ENVIRONMENT.__dict__,
        "server_macs": {
            **ENVIRONMENT.server_macs,
            "2001:2::11": "02:00:00:00:06:11",
        },
        "source_addresses": {4: "198.18.0.2", 6: "2001:2::2"},
    }
)


def dual_stack(mode: str) -> dict[str, Any]:
    dsr = mode == "dsr"
    return {
        "name": "web",
        "address": "198.18.0.100",
        "address6": "2001:2::100",
        "port": 80,
        "mode": "l4",
        "forwarding": "dsr" if dsr else "nat",
        "subnet_originating": not dsr,
        "scheduler": "round_robin",
        "persistence": {"method": "source_ip", "timeout": 600, "source_mask6": 64},
        "real_servers": [
            {"address": "198.18.0.11", "port": 80},
            {"address": "198.18.0.12", "port": 80},
            {"address": "2001:2::11", "port": 80},
        ],
    }


def sorry(persistence: str) -> dict[str, Any]:
    return {
        **service("nat_routed", "round_robin", persistence),
        "not_available": {"sorry_server": {"address": "198.18.0.20", "port": 80}},
    }


ALL_DOWN = {
    ("web", "198.18.0.11:80"): False,
    ("web", "198.18.0.12:8080"): False,
    ("web", "198.18.0.13:80"): False,
}


def with_weights(document: dict[str, Any], weights: tuple[int, ...]) -> dict[str, Any]:
    servers = [{**rs, "weight": w} for rs, w in zip(document["real_servers"], weights, strict=True)]
    return {**document, "real_servers": servers}


def update_cases() -> dict[str, tuple[str, dict[str, Any]]]:
    """update case name -> (its base case, the map update document)."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}

    def add(name: str, base: str, config: dict[str, Any], inputs: L4Inputs) -> None:
        document = {"virtual_services": [config]}
        new = build_ruleset(Configuration.model_validate(document), inputs, RULESETS[base])
        update = in_place(RULESETS[base], new)
        if update is None:
            raise AssertionError(f"{name}: no in-place update from {base}")
        found[name] = (base, update)

    wrr = service("nat_routed", "weighted_round_robin", "source_ip")
    add(
        "update-nat_routed-weight",
        "nat_routed-weighted_round_robin-source_ip",
        with_weights(wrr, (1000, 1000, 1000)),
        inputs_for("nat_routed"),
    )
    add(
        "update-nat_routed-health_down",
        "nat_routed-weighted_round_robin-source_ip",
        wrr,
        inputs_for("nat_routed", health={("web", "198.18.0.11:80"): False}),
    )
    fixed = service("nat_one_armed", "fixed_weighting", "none")
    add(
        "update-nat_one_armed-fixed_failover",
        "nat_one_armed-fixed_weighting-none",
        fixed,
        inputs_for("nat_one_armed", health={("web", "198.18.0.11:80"): False}),
    )
    add(
        "update-nat_routed-least_connection",
        "nat_routed-least_connection-none",
        service("nat_routed", "least_connection", "none"),
        inputs_for("nat_routed", weights={("web", "198.18.0.11:80"): 250}),
    )
    for persistence in PERSISTENCE:
        add(
            f"update-nat_routed-sorry_server-{persistence}",
            f"nat_routed-sorry_server-{persistence}",
            sorry(persistence),
            inputs_for("nat_routed", health=ALL_DOWN),
        )
    # structural: a real server added, one removed (its chain, counter, set and pin map go)
    fourth = {"address": "198.18.0.14", "port": 80, "weight": 1000}
    added = {**wrr, "real_servers": [*wrr["real_servers"], fourth]}
    add(STRUCTURAL[0], "nat_routed-weighted_round_robin-source_ip", added, inputs_for("nat_routed"))
    removed = {**wrr, "real_servers": wrr["real_servers"][:2]}
    add(
        STRUCTURAL[1],
        "nat_routed-weighted_round_robin-source_ip",
        removed,
        inputs_for("nat_routed"),
    )
    dsr_added = service("dsr", "round_robin", "none")
    dsr_added["real_servers"] = [*dsr_added["real_servers"], fourth]
    macs4 = {**ENVIRONMENT.server_macs, "198.18.0.14": "02:00:00:00:00:14"}
    env4 = Environment(**{**ENVIRONMENT.__dict__, "server_macs": macs4})
    add(STRUCTURAL[2], "dsr-round_robin-none", dsr_added, L4Inputs(environment=env4))
    macs = {**ENVIRONMENT.server_macs, "198.18.0.12": "02:00:00:00:01:12"}
    moved = Environment(**{**ENVIRONMENT.__dict__, "server_macs": macs})
    add(
        "update-dsr-mac",
        "dsr-source_ip_hash-none",
        service("dsr", "source_ip_hash", "none"),
        L4Inputs(environment=moved),
    )
    return found


STRUCTURAL = (
    "update-nat_routed-add_server",
    "update-nat_routed-remove_server",
    "update-dsr-add_server",
)
CASES = cases()
UPDATES = update_cases()


GOLDEN = {**CASES, **{name: update for name, (_, update) in UPDATES.items()}}


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_golden(case: str) -> None:
    path = GOLDEN_DIR / f"{case}.json"
    text = json.dumps(GOLDEN[case], indent=1) + "\n"
    if UPDATE_GOLDEN:
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"no golden file {path}; create it with BASCULE_UPDATE_GOLDEN=1")
    assert json.loads(path.read_text()) == GOLDEN[case], f"{path} differs"


@pytest.mark.skipif(UPDATE_GOLDEN, reason="golden files are being rewritten")
def test_no_stale_golden_files() -> None:
    on_disk = {path.stem for path in GOLDEN_DIR.glob("*.json")}
    assert on_disk == set(GOLDEN)


def verbs(update: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (verb, kind)
        for command in update["nftables"]
        for verb, body in command.items()
        for kind in body
    }


def test_runtime_updates_touch_map_elements_only() -> None:
    for name, (_, update) in UPDATES.items():
        if name not in STRUCTURAL:
            assert verbs(update) <= {("delete", "element"), ("add", "element")}, name
            assert update["nftables"], name


def test_a_new_real_server_touches_its_service_only() -> None:
    _, update = UPDATES["update-nat_routed-add_server"]
    added = {
        body["name"]
        for command in update["nftables"]
        for body in command.get("add", {}).values()
        if "name" in body
    }
    assert added == {
        "persist/web/198.18.0.14/80",  # its persistence set, counter, pin map, chain
        "new/web/198.18.0.14/80",
        "pin/web/198.18.0.14/80",
        "rs/web/198.18.0.14/80",
        "sched/web",  # its slots
    }
    flushed = [c["flush"]["chain"]["name"] for c in update["nftables"] if "flush" in c]
    # vs/web gains its persistence rule; every other server's chain forgets its clients too
    assert flushed == [
        "vs/web",
        *(f"rs/web/198.18.0.1{i}/{p}" for i, p in ((1, 80), (2, 8080), (3, 80))),
    ]
    assert ("delete", "chain") not in verbs(update)


def load(namespace: str, case: str, *, check_only: bool) -> None:
    """A clean namespace with ``case``'s prelude run and its ruleset checked or loaded."""
    assert nft(namespace, "flush", "ruleset", stdin="").returncode == 0
    text = "\n".join(CASES[case]["prelude"])
    if text:
        done = nft(namespace, "-f", "-", stdin=text + "\n")
        assert done.returncode == 0, done.stderr
    document = json.dumps({"nftables": CASES[case]["nftables"]})
    done = nft(namespace, *(["-c"] if check_only else []), "-j", "-f", "-", stdin=document)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_nft_accepts(case: str, namespace: str) -> None:
    load(namespace, case, check_only=True)


@pytest.mark.parametrize("case", sorted(UPDATES))
def test_nft_accepts_update_after_its_base(case: str, namespace: str) -> None:
    base, update = UPDATES[case]
    load(namespace, base, check_only=False)
    done = nft(namespace, "-c", "-j", "-f", "-", stdin=json.dumps(update))
    assert done.returncode == 0, done.stderr
    done = nft(namespace, "-j", "-f", "-", stdin=json.dumps(update))  # and for real
    assert done.returncode == 0, done.stderr
