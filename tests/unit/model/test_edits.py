"""model/edits.py: fine-grained edits as pure functions on the JSON document."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from bascule.errors import FieldError, InvalidConfiguration, NotFound
from bascule.model import edits, parse_document

Document = dict[str, Any]


def rs(address: str, port: int = 80, **fields: Any) -> Document:
    return {"address": address, "port": port, **fields}


def vs(name: str, port: int = 80, *servers: Document, **fields: Any) -> Document:
    return {
        "name": name,
        "address": "198.18.0.100",
        "port": port,
        "real_servers": list(servers),
        **fields,
    }


def document() -> Document:
    return {
        "virtual_services": [
            vs("web", 80, rs("198.18.0.4"), rs("198.18.0.5", weight=2000), check={"interval": 5}),
            vs("v6", 443, rs("2001:db8::4", 443)),
        ]
    }


# -- virtual services ------------------------------------------------------------------------


def test_add_virtual_service_appends_it() -> None:
    result = edits.add_virtual_service(document(), vs("api", 8080))
    assert [s["name"] for s in result["virtual_services"]] == ["web", "v6", "api"]
    assert result["virtual_services"][2] == vs("api", 8080)
    parse_document(result)


def test_add_virtual_service_to_an_empty_document() -> None:
    assert edits.add_virtual_service({}, vs("api")) == {"virtual_services": [vs("api")]}


def test_add_virtual_service_refuses_a_duplicate_name() -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        edits.add_virtual_service(document(), vs("web", 8080))
    assert caught.value.errors == (
        FieldError(path="name", message="a virtual service named 'web' already exists"),
    )


def test_replace_virtual_service() -> None:
    result = edits.replace_virtual_service(document(), "web", vs("web", 81))
    assert result["virtual_services"][0] == vs("web", 81)
    assert result["virtual_services"][1] == document()["virtual_services"][1]


def test_update_virtual_service_merges_nested_mappings_and_replaces_lists() -> None:
    result = edits.update_virtual_service(
        document(),
        "web",
        {"port": 81, "check": {"timeout": 2}, "extra_ports": [8080], "real_servers": []},
    )
    expected = {
        **document()["virtual_services"][0],
        "port": 81,
        "check": {"interval": 5, "timeout": 2},
        "extra_ports": [8080],
        "real_servers": [],
    }
    assert result["virtual_services"][0] == expected


def test_update_virtual_service_replaces_a_mapping_with_a_scalar_and_back() -> None:
    cleared = edits.update_virtual_service(document(), "web", {"check": None})
    assert cleared["virtual_services"][0]["check"] is None
    restored = edits.update_virtual_service(cleared, "web", {"check": {"type": "tcp"}})
    assert restored["virtual_services"][0]["check"] == {"type": "tcp"}


ADAPTIVE = {"scheduler": "adaptive", "adaptive": {"url": "/load", "port": 8080}}


def adaptive_document() -> Document:
    return {"virtual_services": [vs("web", 80, rs("198.18.0.4"), **ADAPTIVE)]}


def test_a_new_scheduler_drops_the_adaptive_agent() -> None:
    result = edits.update_virtual_service(adaptive_document(), "web", {"scheduler": "round_robin"})
    [web] = result["virtual_services"]
    assert web["scheduler"] == "round_robin"
    assert "adaptive" not in web
    assert parse_document(result).virtual_services[0].adaptive is None


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"scheduler": "adaptive"}, id="adaptive again"),
        pytest.param({"port": 81}, id="another field"),
        pytest.param({"adaptive": {"interval": 3}}, id="the agent itself"),
    ],
)
def test_the_adaptive_agent_stays_while_the_scheduler_is_adaptive(changes: Document) -> None:
    result = edits.update_virtual_service(adaptive_document(), "web", changes)
    assert result["virtual_services"][0]["adaptive"]["url"] == "/load"
    parse_document(result)


def test_a_new_scheduler_with_an_agent_is_judged_by_the_model() -> None:
    # both named in one change: the person's own contradiction, refused beside the field
    result = edits.update_virtual_service(
        adaptive_document(), "web", {"scheduler": "round_robin", "adaptive": {"port": 81}}
    )
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(result)
    assert "only used with scheduler: adaptive" in str(caught.value)


def test_a_whole_service_is_taken_as_written() -> None:
    replaced = {**vs("web", 80, rs("198.18.0.4")), **ADAPTIVE, "scheduler": "round_robin"}
    result = edits.replace_virtual_service(adaptive_document(), "web", replaced)
    assert result["virtual_services"][0]["adaptive"] == ADAPTIVE["adaptive"]


def test_update_can_rename_a_service() -> None:
    result = edits.update_virtual_service(document(), "web", {"name": "www"})
    assert [s["name"] for s in result["virtual_services"]] == ["www", "v6"]


def test_delete_virtual_service() -> None:
    result = edits.delete_virtual_service(document(), "web")
    assert result == {"virtual_services": [document()["virtual_services"][1]]}


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: edits.replace_virtual_service(d, "nope", vs("nope")),
        lambda d: edits.update_virtual_service(d, "nope", {"port": 81}),
        lambda d: edits.delete_virtual_service(d, "nope"),
        lambda d: edits.add_real_server(d, "nope", rs("198.18.0.9")),
        lambda d: edits.update_real_server(d, "nope", "198.18.0.4:80", {"weight": 1}),
        lambda d: edits.delete_real_server(d, "nope", "198.18.0.4:80"),
    ],
    ids=["replace", "update", "delete", "add rs", "update rs", "delete rs"],
)
def test_an_unknown_virtual_service_is_not_found(edit: Callable[[Document], Document]) -> None:
    with pytest.raises(NotFound, match="there is no virtual service named 'nope'"):
        edit(document())


# -- real servers ----------------------------------------------------------------------------


def test_add_real_server() -> None:
    result = edits.add_real_server(document(), "web", rs("198.18.0.6", weight=3))
    assert result["virtual_services"][0]["real_servers"][-1] == rs("198.18.0.6", weight=3)
    parse_document(result)


def test_add_real_server_to_a_service_without_any() -> None:
    start = {"virtual_services": [{"name": "web", "address": "198.18.0.100", "port": 80}]}
    result = edits.add_real_server(start, "web", rs("198.18.0.6"))
    assert result["virtual_services"][0]["real_servers"] == [rs("198.18.0.6")]


@pytest.mark.parametrize(
    ("service", "server", "key"),
    [
        ("web", rs("198.18.0.4"), "198.18.0.4:80"),
        ("web", rs("198.18.0.4", "80"), "198.18.0.4:80"),
        ("v6", rs("2001:DB8::4", 443), "[2001:db8::4]:443"),
        ("v6", rs("2001:db8:0:0::4", 443), "[2001:db8::4]:443"),
        ("v6", rs("[2001:db8::4]", 443), "[2001:db8::4]:443"),
    ],
)
def test_add_real_server_refuses_a_duplicate(service: str, server: Document, key: str) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        edits.add_real_server(document(), service, server)
    assert caught.value.errors == (
        FieldError(path="address", message=f"{key} is already a real server of {service}"),
    )


def test_the_same_address_on_another_port_is_another_server() -> None:
    result = edits.add_real_server(document(), "web", rs("198.18.0.4", 81))
    assert len(result["virtual_services"][0]["real_servers"]) == 3


def test_update_real_server_merges() -> None:
    result = edits.update_real_server(document(), "web", "198.18.0.5:80", {"state": "drain"})
    assert result["virtual_services"][0]["real_servers"][1] == rs(
        "198.18.0.5", weight=2000, state="drain"
    )
    assert result["virtual_services"][0]["real_servers"][0] == rs("198.18.0.4")


@pytest.mark.parametrize(
    "key",
    ["[2001:db8::4]:443", "[2001:DB8::4]:443", "[2001:db8:0::4]:443", "2001:db8::4:443"],
)
def test_ipv6_keys_are_normalised(key: str) -> None:
    result = edits.update_real_server(document(), "v6", key, {"weight": 7})
    assert result["virtual_services"][1]["real_servers"][0]["weight"] == 7
    deleted = edits.delete_real_server(document(), "v6", key)
    assert deleted["virtual_services"][1]["real_servers"] == []


def test_delete_real_server() -> None:
    result = edits.delete_real_server(document(), "web", "198.18.0.4:80")
    assert result["virtual_services"][0]["real_servers"] == [rs("198.18.0.5", weight=2000)]


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: edits.update_real_server(d, "web", "198.18.0.9:80", {"weight": 1}),
        lambda d: edits.delete_real_server(d, "web", "198.18.0.9:80"),
        lambda d: edits.delete_real_server(d, "web", "198.18.0.4:81"),
    ],
    ids=["update", "delete", "other port"],
)
def test_an_unknown_real_server_is_not_found(edit: Callable[[Document], Document]) -> None:
    with pytest.raises(NotFound, match=r"virtual service 'web' has no real server 198\.18\.0\."):
        edit(document())


@pytest.mark.parametrize("key", ["198.18.0.4", "198.18.0.4:http", ":80", ""])
def test_a_malformed_key_is_not_found(key: str) -> None:
    with pytest.raises(NotFound, match="is not a real server address:port"):
        edits.delete_real_server(document(), "web", key)


@pytest.mark.parametrize(
    ("address", "port", "key"),
    [
        ("198.18.0.4", 80, "198.18.0.4:80"),
        ("2001:DB8::4", 80, "[2001:db8::4]:80"),
        ("[2001:db8::4]", 80, "[2001:db8::4]:80"),
        ("not-an-ip", 80, "not-an-ip:80"),
        (None, None, "None:None"),
    ],
)
def test_server_key(address: Any, port: Any, key: str) -> None:
    assert edits.server_key(address, port) == key


def test_server_key_matches_the_model() -> None:
    config = parse_document(document())
    assert config.virtual_services[1].real_servers[0].key == edits.server_key("2001:DB8::4", 443)


# -- purity ----------------------------------------------------------------------------------

EDITS: list[tuple[str, Callable[[Document, Document], Document]]] = [
    ("add vs", lambda d, x: edits.add_virtual_service(d, x)),
    ("replace vs", lambda d, x: edits.replace_virtual_service(d, "web", x)),
    ("update vs", lambda d, x: edits.update_virtual_service(d, "web", x)),
    ("delete vs", lambda d, x: edits.delete_virtual_service(d, "web")),
    ("add rs", lambda d, x: edits.add_real_server(d, "web", x)),
    ("update rs", lambda d, x: edits.update_real_server(d, "web", "198.18.0.4:80", x)),
    ("delete rs", lambda d, x: edits.delete_real_server(d, "web", "198.18.0.4:80")),
]


def _argument(name: str) -> Document:
    if name.endswith("vs"):
        return vs("api", 8080, rs("198.18.0.9"), check={"interval": 3})
    return {**rs("198.18.0.9"), "check_headers": {"X-A": "1"}}


@pytest.mark.parametrize("edit", [pytest.param(e, id=i) for i, e in EDITS])
def test_the_input_is_never_mutated(
    request: pytest.FixtureRequest, edit: Callable[[Document, Document], Document]
) -> None:
    name = request.node.callspec.id
    original, argument = document(), _argument(name)
    kept, kept_argument = copy.deepcopy(original), copy.deepcopy(argument)
    result = edit(original, argument)
    assert original == kept
    assert argument == kept_argument
    # the services it left alone are the input's very mappings (copy on write: the change
    # pipeline validates and compares only the others); the rest shares nothing with the
    # inputs, so a change through the result does not reach them
    (untouched,) = [vs for vs in result["virtual_services"] if vs.get("name") == "v6"]
    assert untouched is original["virtual_services"][1]
    for service in result["virtual_services"]:
        if any(service is old for old in original["virtual_services"]):
            continue
        for server in service.get("real_servers", []):
            server["weight"] = 9
            server.get("check_headers", {}).clear()
        service.get("check", {})["interval"] = 99
        service.setdefault("real_servers", []).append(rs("198.18.0.99"))
    assert original == kept
    assert argument == kept_argument


# -- content rules and sub-services ------------------------------------------------------------


def _site() -> Document:
    rules = [
        {"name": name, "match": {"path": f"/{name}"}, "action": {"use_default": True}}
        for name in ("a", "b", "c")
    ]
    return {"virtual_services": [{**vs("site", 80), "rules": rules, "sub_services": []}]}


def _rule_names(document: Document) -> list[str]:
    return [rule["name"] for rule in document["virtual_services"][0]["rules"]]


@pytest.mark.parametrize(
    ("position", "order"),
    [(0, "cab"), (1, "acb"), (2, "abc"), (9, "abc")],
)
def test_move_rule(position: int, order: str) -> None:
    original = _site()
    moved = edits.move_rule(original, "site", "c", position)
    assert _rule_names(moved) == list(order)
    assert _rule_names(original) == ["a", "b", "c"]


def test_add_replace_delete_rule() -> None:
    rule = {"name": "d", "match": {"path": "/d"}, "action": {"use_default": True}}
    added = edits.add_rule(_site(), "site", rule)
    assert _rule_names(added) == ["a", "b", "c", "d"]
    renamed = edits.replace_rule(added, "site", "b", {**rule, "name": "e"})
    assert _rule_names(renamed) == ["a", "e", "c", "d"]
    assert _rule_names(edits.delete_rule(renamed, "site", "a")) == ["e", "c", "d"]
    with pytest.raises(InvalidConfiguration) as taken:
        edits.replace_rule(added, "site", "b", {**rule, "name": "c"})
    assert list(taken.value.errors) == [
        FieldError(path="name", message="a rule of site is already named 'c'")
    ]
    with pytest.raises(NotFound, match="has no rule named 'x'"):
        edits.delete_rule(added, "site", "x")


def test_sub_service_edits() -> None:
    added = edits.add_sub_service(_site(), "site", {"name": "api"})
    with pytest.raises(InvalidConfiguration):
        edits.add_sub_service(added, "site", {"name": "api"})
    changed = edits.update_sub_service(
        added, "site", "api", {"scheduler": "least_connection", "persistence": None}
    )
    assert changed["virtual_services"][0]["sub_services"] == [
        {"name": "api", "scheduler": "least_connection", "persistence": None}
    ]
    assert (
        edits.delete_sub_service(changed, "site", "api")["virtual_services"][0]["sub_services"]
        == []
    )
    with pytest.raises(NotFound, match="no sub-service named 'x'"):
        edits.update_sub_service(added, "site", "x", {})
