"""Golden files of the filter table (``inet bascule_filter``, ``access.build_filter``), and
`nft -c` accepting each one inside a throwaway network namespace; ``update-*`` files are set
updates (``access.set_update``), checked by nft against their base loaded for real.

Regenerate after an intended change with
``BASCULE_UPDATE_GOLDEN=1 pytest tests/unit/engines/nftables/test_filter_golden.py`` and
review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from nft_namespace import nft

from bascule.engines.nftables.access import FilterRuleset, build_filter, set_update, share
from bascule.model import parse_document

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "nftables-filter"
UPDATE_GOLDEN = os.environ.get("BASCULE_UPDATE_GOLDEN") == "1"

LISTS = {
    "blocked": {"addresses": ["198.18.7.0/24", "198.18.9.9", "2001:2:0:7::/64"]},
    "office": {"addresses": ["198.18.0.0/24"], "file": "office.txt"},
    "partners": {"addresses": ["198.18.4.4", "2001:2::44"]},
    "unused": {"addresses": ["198.18.100.0/24"]},
}


def service(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "address": "198.18.0.100",
        "port": 80,
        "real_servers": [{"address": "198.18.0.11", "port": 80}],
        **fields,
    }


def document(*services: dict[str, Any], lists: Any = None, block: Any = ()) -> dict[str, Any]:
    return {
        "access_lists": LISTS if lists is None else lists,
        "block": list(block),
        "virtual_services": list(services),
    }


DOCUMENTS: dict[str, dict[str, Any]] = {
    "block-l7": document(service("site", extra_ports=[8080]), block=["blocked"]),
    "limits-l4-nat": document(
        service(
            "fast",
            mode="l4",
            address6="2001:2::100",
            limits={
                "max_connections": 10000,
                "connections_per_second": 500,
                "per_client": {"connections": 50, "connections_per_second": 20},
                "exempt": ["office"],
            },
        ),
        service("site", port=8080, limits={"per_client": {"connections": 5}}),
    ),
    "access-l7-and-nat": document(
        service("site", access={"allow": ["office", "partners"], "deny": ["blocked"]}),
        service(
            "dns",
            port=53,
            protocol="udp",
            mode="l4",
            access={"deny": ["blocked"]},
            real_servers=[{"address": "198.18.0.11", "port": 53}],
        ),
        service("open", port=8443),
    ),
    "dsr-and-block": document(
        service("site"),
        service(
            "fast",
            address="198.18.0.101",
            mode="l4",
            forwarding="dsr",
            access={"allow": ["office"]},
        ),
        block=["blocked"],
    ),
    "dual_stack-and-every-address": document(
        service("dual", address6="2001:2::100", access={"allow": ["partners"]}),
        service("any", address="0.0.0.0", port=8080, access={"deny": ["blocked"]}),
        block=["blocked"],
    ),
    "nothing": document(service("site")),
}
DEVICES = {"fast": "eth0"}


def build(data: dict[str, Any]) -> FilterRuleset:
    return build_filter(share(parse_document(data)), DEVICES)


def golden(ruleset: FilterRuleset) -> dict[str, Any]:
    return ruleset.transaction()


RULESETS = {name: build(data) for name, data in DOCUMENTS.items()}


def update_cases() -> dict[str, tuple[str, dict[str, Any]]]:
    """update case name -> (its base case, the set update)."""
    more_blocked = {**LISTS, "blocked": {"addresses": ["198.18.7.0/24", "198.18.8.0/24"]}}
    changed = build(
        document(service("site", extra_ports=[8080]), lists=more_blocked, block=["blocked"])
    )
    update = set_update(RULESETS["block-l7"], changed)
    assert update is not None
    emptied = {**LISTS, "office": {"addresses": []}}
    base = DOCUMENTS["access-l7-and-nat"]
    emptied_update = set_update(
        RULESETS["access-l7-and-nat"], build({**base, "access_lists": emptied})
    )
    assert emptied_update is not None
    return {
        "update-block-l7-list": ("block-l7", update),
        "update-access-emptied": ("access-l7-and-nat", emptied_update),
    }


UPDATES = update_cases()
GOLDEN = {
    **{name: golden(ruleset) for name, ruleset in RULESETS.items()},
    **{name: update for name, (_, update) in UPDATES.items()},
}


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
    assert {path.stem for path in GOLDEN_DIR.glob("*.json")} == set(GOLDEN)


def test_updates_touch_sets_only() -> None:
    for name, (_, update) in UPDATES.items():
        verbs = {
            (verb, kind)
            for command in update["nftables"]
            for verb, body in command.items()
            for kind in body
        }
        assert verbs <= {("flush", "set"), ("add", "element")}, name
        assert update["nftables"], name


def test_a_change_beyond_the_lists_replaces_the_table() -> None:
    moved = build(document(service("site", extra_ports=[8081]), block=["blocked"]))
    assert set_update(RULESETS["block-l7"], moved) is None


def test_unused_lists_are_not_loaded_and_nothing_filtered_is_empty() -> None:
    names = {
        body["name"]
        for c in RULESETS["block-l7"].structure
        for body in [c["add"]]
        if "set" in body
        for body in [body["set"]]
    }
    assert names == {"acl4/blocked", "acl6/blocked"}
    assert RULESETS["nothing"].empty


@pytest.mark.parametrize("case", sorted(name for name in RULESETS if not RULESETS[name].empty))
def test_nft_accepts(case: str, namespace: str) -> None:
    assert nft(namespace, "flush", "ruleset", stdin="").returncode == 0
    done = nft(namespace, "-c", "-j", "-f", "-", stdin=json.dumps(GOLDEN[case]))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("case", sorted(UPDATES))
def test_nft_accepts_update_after_its_base(case: str, namespace: str) -> None:
    base, update = UPDATES[case]
    assert nft(namespace, "flush", "ruleset", stdin="").returncode == 0
    done = nft(namespace, "-j", "-f", "-", stdin=json.dumps(GOLDEN[base]))
    assert done.returncode == 0, done.stderr
    done = nft(namespace, "-c", "-j", "-f", "-", stdin=json.dumps(update))
    assert done.returncode == 0, done.stderr
