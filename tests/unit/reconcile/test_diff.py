"""Document diffs as values: paths, keyed matching, formatting, JSON and applying."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.reconcile.diff import (
    KEYED_LISTS,
    DiffDoesNotApply,
    DiffItem,
    DiffOp,
    apply_diff,
    diff_documents,
    diff_from_json,
    diff_to_json,
    format_diff,
    item_key,
    parse_path,
)

ADD, REMOVE, CHANGE = DiffOp.ADD, DiffOp.REMOVE, DiffOp.CHANGE


def rs(address: str, port: int = 80, **fields: Any) -> dict[str, Any]:
    return {"address": address, "port": port, "weight": 1000, **fields}


def vs(name: str, *servers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "address": "198.18.0.100",
        "port": 80,
        "extra_ports": [],
        "check": {"type": "http", "interval": 2, "headers": {}},
        **fields,
        "real_servers": list(servers),
    }


def doc(*services: dict[str, Any]) -> dict[str, Any]:
    return {"virtual_services": list(services)}


WEB = vs("web", rs("198.18.0.4"), rs("198.18.0.5"))
API = vs("api", rs("198.18.0.6", 8080), address="198.18.0.101")


def with_changes(document: dict[str, Any], change: Any) -> dict[str, Any]:
    result = copy.deepcopy(document)
    change(result)
    return result


CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any], tuple[DiffItem, ...]]] = [
    ("same document", doc(WEB), doc(WEB), ()),
    (
        "first document",
        None,
        doc(WEB),
        (DiffItem(op=ADD, path="virtual_services", old=None, new=[WEB]),),
    ),
    (
        "port changed",
        doc(WEB),
        with_changes(doc(WEB), lambda d: d["virtual_services"][0].update(port=8080)),
        (DiffItem(op=CHANGE, path="virtual_services[web].port", old=80, new=8080),),
    ),
    (
        "service inserted first: nothing else moves",
        doc(WEB),
        doc(API, WEB),
        (DiffItem(op=ADD, path="virtual_services[api]", old=None, new=API),),
    ),
    (
        "service removed",
        doc(API, WEB),
        doc(WEB),
        (DiffItem(op=REMOVE, path="virtual_services[api]", old=API, new=None),),
    ),
    (
        "real server added",
        doc(WEB),
        doc(vs("web", rs("198.18.0.4"), rs("198.18.0.5"), rs("198.18.0.7"))),
        (
            DiffItem(
                op=ADD,
                path="virtual_services[web].real_servers[198.18.0.7:80]",
                old=None,
                new=rs("198.18.0.7"),
            ),
        ),
    ),
    (
        "real server weight changed and another removed",
        doc(WEB),
        doc(vs("web", rs("198.18.0.5", weight=500))),
        (
            DiffItem(
                op=REMOVE,
                path="virtual_services[web].real_servers[198.18.0.4:80]",
                old=rs("198.18.0.4"),
                new=None,
            ),
            DiffItem(
                op=CHANGE,
                path="virtual_services[web].real_servers[198.18.0.5:80].weight",
                old=1000,
                new=500,
            ),
        ),
    ),
    (
        "same address, other port: another real server",
        doc(vs("web", rs("198.18.0.4", 80))),
        doc(vs("web", rs("198.18.0.4", 81))),
        (
            DiffItem(
                op=REMOVE,
                path="virtual_services[web].real_servers[198.18.0.4:80]",
                old=rs("198.18.0.4", 80),
                new=None,
            ),
            DiffItem(
                op=ADD,
                path="virtual_services[web].real_servers[198.18.0.4:81]",
                old=None,
                new=rs("198.18.0.4", 81),
            ),
        ),
    ),
    (
        "IPv6 real server key",
        doc(vs("web", rs("2001:db8::4"))),
        doc(vs("web", rs("2001:db8::4", weight=1))),
        (
            DiffItem(
                op=CHANGE,
                path="virtual_services[web].real_servers[2001:db8::4:80].weight",
                old=1000,
                new=1,
            ),
        ),
    ),
    (
        "other lists compare whole",
        doc(WEB),
        with_changes(doc(WEB), lambda d: d["virtual_services"][0].update(extra_ports=[8080])),
        (DiffItem(op=CHANGE, path="virtual_services[web].extra_ports", old=[], new=[8080]),),
    ),
    (
        "nested mapping field added and removed",
        doc(vs("web", persistence={"method": "none", "timeout": 3600})),
        doc(vs("web", persistence={"method": "source_ip", "source_mask": 24})),
        (
            DiffItem(
                op=CHANGE,
                path="virtual_services[web].persistence.method",
                old="none",
                new="source_ip",
            ),
            DiffItem(
                op=REMOVE, path="virtual_services[web].persistence.timeout", old=3600, new=None
            ),
            DiffItem(
                op=ADD, path="virtual_services[web].persistence.source_mask", old=None, new=24
            ),
        ),
    ),
    (
        "a key that is not an identifier is quoted",
        doc(WEB),
        with_changes(
            doc(WEB), lambda d: d["virtual_services"][0]["check"]["headers"].update({"X.Y z": "1"})
        ),
        (DiffItem(op=ADD, path='virtual_services[web].check.headers["X.Y z"]', old=None, new="1"),),
    ),
    (
        "reordering keyed lists is no change",
        doc(API, WEB),
        doc(WEB, vs("api", rs("198.18.0.6", 8080), address="198.18.0.101")),
        (),
    ),
    (
        "JSON-exact: 1 and true differ",
        {"enabled": 1},
        {"enabled": True},
        (DiffItem(op=CHANGE, path="enabled", old=1, new=True),),
    ),
    (
        "null to a value is a change, not an add",
        {"check": {"port": None}},
        {"check": {"port": 8080}},
        (DiffItem(op=CHANGE, path="check.port", old=None, new=8080),),
    ),
    (
        "duplicate names: the list compares whole",
        doc(vs("web"), vs("web")),
        doc(vs("web")),
        (
            DiffItem(
                op=CHANGE, path="virtual_services", old=[vs("web"), vs("web")], new=[vs("web")]
            ),
        ),
    ),
    (
        "type change of a subtree",
        {"check": {"type": "tcp"}},
        {"check": None},
        (DiffItem(op=CHANGE, path="check", old={"type": "tcp"}, new=None),),
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_diff_documents(
    old: dict[str, Any] | None, new: dict[str, Any], expected: tuple[DiffItem, ...]
) -> None:
    assert diff_documents(old, new) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_apply_diff_replays_each_case(
    old: dict[str, Any] | None, new: dict[str, Any], expected: tuple[DiffItem, ...]
) -> None:
    assert canonical(apply_diff(old, expected)) == canonical(new)


def test_diff_does_not_alias_the_documents() -> None:
    new = doc(vs("web", rs("198.18.0.4")))
    (item,) = diff_documents(doc(), new)
    new["virtual_services"][0]["port"] = 1
    assert isinstance(item.new, dict)
    assert item.new["port"] == 80


def test_tuples_are_lists() -> None:
    assert diff_documents({"extra_ports": [1, 2]}, {"extra_ports": (1, 2)}) == ()


@pytest.mark.parametrize("bad", [{"a": {1, 2}}, {"a": {1: "x"}}, {"a": float("nan")}])
def test_non_json_documents_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        diff_documents(None, bad)


def test_format_diff() -> None:
    items = (
        DiffItem(
            op=ADD,
            path="virtual_services[web].real_servers[198.18.0.4:80]",
            old=None,
            new={"address": "198.18.0.4", "port": 80},
        ),
        DiffItem(op=CHANGE, path="virtual_services[web].port", old=80, new=8080),
        DiffItem(op=CHANGE, path="virtual_services[web].scheduler", old="round_robin", new=None),
        DiffItem(op=REMOVE, path="virtual_services[api]", old={"name": "api"}, new=None),
    )
    assert format_diff(items) == "\n".join(
        [
            "+ virtual_services[web].real_servers[198.18.0.4:80]: "
            '{"address": "198.18.0.4", "port": 80}',
            "~ virtual_services[web].port: 80 -> 8080",
            '~ virtual_services[web].scheduler: "round_robin" -> null',
            '- virtual_services[api]: {"name": "api"}',
        ]
    )
    assert format_diff(()) == ""


def test_json_round_trip() -> None:
    items = diff_documents(doc(WEB), doc(API, vs("web", rs("198.18.0.4", weight=2))))
    data = diff_to_json(items)
    assert data[1] == {
        "op": "remove",
        "path": "virtual_services[web].real_servers[198.18.0.5:80]",
        "old": rs("198.18.0.5"),
        "new": None,
    }
    assert diff_from_json(data) == items


@pytest.mark.parametrize(
    "bad",
    [
        {"op": "add"},
        [{"op": "move", "path": "a"}],
        [{"op": "add", "path": 3}],
        [{"op": "add", "path": "a", "extra": 1}],
        ["add"],
    ],
)
def test_diff_from_json_refuses_malformed(bad: Any) -> None:
    with pytest.raises(ValueError):
        diff_from_json(bad)


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("virtual_services", ("virtual_services",)),
        (
            "virtual_services[web].real_servers[198.18.0.4:80].weight",
            ("virtual_services", "web", "real_servers", "198.18.0.4:80", "weight"),
        ),
        ('check.headers["X.Y ]z"]', ("check", "headers", "X.Y ]z")),
        ('["a b"].c', ("a b", "c")),
    ],
)
def test_parse_path(path: str, segments: tuple[str, ...]) -> None:
    assert parse_path(path) == segments


@pytest.mark.parametrize("path", [".a", "a..b", "a[]", "a[x", "a b", 'a["x"', "a[x]b"])
def test_parse_path_refuses(path: str) -> None:
    with pytest.raises(ValueError):
        parse_path(path)


@pytest.mark.parametrize(
    "item",
    [
        DiffItem(op=CHANGE, path="virtual_services[web].port", old=81, new=8080),
        DiffItem(op=REMOVE, path="virtual_services[nope]", old={"name": "nope"}, new=None),
        DiffItem(op=ADD, path="virtual_services[web]", old=None, new=vs("web")),
        DiffItem(op=ADD, path="virtual_services[api]", old=None, new=vs("other")),
        DiffItem(op=CHANGE, path="virtual_services[web].extra_ports[0]", old=1, new=2),
        DiffItem(op=ADD, path="", old=None, new=1),
    ],
    ids=["stale old", "absent", "already there", "key mismatch", "unkeyed list", "empty"],
)
def test_apply_diff_refuses_what_does_not_fit(item: DiffItem) -> None:
    with pytest.raises(DiffDoesNotApply):
        apply_diff(doc(WEB), (item,))


def test_apply_diff_does_not_touch_its_input() -> None:
    before = doc(WEB)
    snapshot = copy.deepcopy(before)
    apply_diff(before, diff_documents(before, doc(API)))
    assert before == snapshot


# -- properties -----------------------------------------------------------------------------


def canonical(value: Any, field: str | None = None) -> Any:
    """``value`` with keyed lists sorted by key, where the diff treats them as unordered."""
    if isinstance(value, dict):
        return {key: canonical(child, key) for key, child in value.items()}
    if isinstance(value, list):
        items = [canonical(child) for child in value]
        fields = KEYED_LISTS.get(field or "")
        if fields is not None:
            keys = [item_key(item, fields) for item in items]
            if None not in keys and len(set(keys)) == len(keys):
                return sorted(items, key=lambda item: str(item_key(item, fields)))
        return items
    return value


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "x y", "c.d", ""]), children, max_size=3)
    ),
    max_leaves=10,
)
fields = st.dictionaries(
    st.sampled_from(["weight", "state", "enabled", "check", "extra_ports", "x.y"]),
    json_values,
    max_size=3,
)
real_servers = st.lists(
    st.builds(
        lambda address, port, extra: {"address": address, "port": port, **extra},
        st.sampled_from(["198.18.0.4", "198.18.0.5", "2001:db8::1", "a]b"]),
        st.sampled_from([80, 81]),
        fields,
    ),
    max_size=4,
    unique_by=lambda server: (server["address"], server["port"]),
)
virtual_services = st.lists(
    st.builds(
        lambda name, servers, extra: {"name": name, **extra, "real_servers": servers},
        st.sampled_from(["web", "api", "mail", "we b"]),
        real_servers,
        fields,
    ),
    max_size=4,
    unique_by=lambda service: service["name"],
)
documents = st.builds(
    lambda services, extra: {**extra, "virtual_services": services},
    virtual_services,
    st.dictionaries(st.sampled_from(["version", "ha"]), json_values, max_size=2),
) | st.dictionaries(st.sampled_from(["virtual_services", "real_servers", "z"]), json_values)


@given(documents)
def test_a_document_has_no_diff_with_itself(document: dict[str, Any]) -> None:
    assert diff_documents(document, copy.deepcopy(document)) == ()


@settings(max_examples=300)
@given(documents, documents)
def test_applying_the_diff_gives_the_new_document(a: dict[str, Any], b: dict[str, Any]) -> None:
    items = diff_documents(a, b)
    assert canonical(apply_diff(a, items)) == canonical(b)
    assert diff_documents(apply_diff(a, items), b) == ()
    assert diff_from_json(diff_to_json(items)) == items


@given(documents, documents)
def test_an_empty_diff_means_the_same_configuration(a: dict[str, Any], b: dict[str, Any]) -> None:
    if diff_documents(a, b) == ():
        assert canonical(a) == canonical(b)


def test_shared_items_hold_the_documents_own_values() -> None:
    # The first apply of 10,000 servers is one ADD of the whole list: with share, the item
    # holds the document's own list, not a copy (issue 15); what is not a dict or a list is
    # copied.
    document: dict[str, Any] = {
        "virtual_services": [{"name": "web", "real_servers": [], "extra_ports": (8080,)}],
        "block": ["a"],
    }
    assert diff_documents(None, document, share=True) == diff_documents(None, document)
    (services, block) = diff_documents(None, document, share=True)
    assert block.new is document["block"]
    assert services.new is not document["virtual_services"]  # its tuple became a list
    assert services.new == [{"name": "web", "real_servers": [], "extra_ports": [8080]}]
    assert services.new[0]["real_servers"] is document["virtual_services"][0]["real_servers"]
    assert document["virtual_services"][0]["extra_ports"] == (8080,)  # left as it was
