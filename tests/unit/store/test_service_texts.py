"""ServiceTexts: the stored text of a document, each unchanged service copied from the
revision that stored it rather than encoded again."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bascule.store.texts import ServiceTexts


def encoded(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


class Revisions:
    """Stored texts by (number, time), as the store's table holds them; what was read."""

    def __init__(self) -> None:
        self.texts: dict[tuple[int, str], str] = {}
        self.read: list[tuple[int, str]] = []

    def stored(self, row: tuple[int, str]) -> str | None:
        self.read.append(row)
        return self.texts.get(row)

    def commit(self, texts: ServiceTexts, document: dict[str, Any], number: int) -> str:
        prepared = texts.prepare(document)
        text = texts.text(prepared, self.stored)
        row = (number, f"t{number}")
        self.texts[row] = text
        texts.stored(prepared, row)
        return text


def services(count: int) -> list[dict[str, Any]]:
    return [{"name": f"vs-{i}", "note": "é\u2028", "ports": [i]} for i in range(count)]


def test_the_text_is_the_documents_json_and_copies_the_shared_services() -> None:
    texts, revisions = ServiceTexts(), Revisions()
    first = {"schema_version": 9, "virtual_services": services(3), "logging": {"a": 1}}
    assert revisions.commit(texts, first, 1) == encoded(first)
    assert revisions.read == []  # nothing stored to copy from yet
    # a document sharing two services with the last one, one of them replaced
    vs = first["virtual_services"]
    second = {**first, "virtual_services": [vs[0], {**vs[1], "ports": [42]}, vs[2]]}
    assert revisions.commit(texts, second, 2) == encoded(second)
    assert revisions.read == [(1, "t1")]
    # and from that one again, its own places
    third = {**second, "virtual_services": second["virtual_services"][:2]}
    assert revisions.commit(texts, third, 3) == encoded(third)
    assert revisions.read[-1] == (2, "t2")


@pytest.mark.parametrize(
    "changed",
    [set(), {0}, {9}, {4}, {0, 9}, {1, 2, 5, 8}, set(range(10))],
    ids=repr,
)
def test_any_services_changed_or_moved_give_the_documents_json(changed: set[int]) -> None:
    texts, revisions = ServiceTexts(), Revisions()
    first = {"virtual_services": services(10), "block": ["x"]}
    revisions.commit(texts, first, 1)
    vs = [
        {**service, "ports": [100 + i]} if i in changed else service
        for i, service in enumerate(first["virtual_services"])
    ]
    second = {"block": [], "virtual_services": vs}
    assert revisions.commit(texts, second, 2) == encoded(second)
    moved = {"virtual_services": [vs[5], vs[0], *vs[6:], vs[1], {"name": "new"}, vs[3]]}
    assert revisions.commit(texts, moved, 3) == encoded(moved)


def test_a_revision_gone_or_replaced_encodes_the_services_again() -> None:
    texts, revisions = ServiceTexts(), Revisions()
    first = {"virtual_services": services(3)}
    revisions.commit(texts, first, 1)
    revisions.texts.clear()  # pruned, or another revision 1 (a restored backup)
    second = {"virtual_services": [*first["virtual_services"], {"name": "vs-3"}]}
    assert revisions.commit(texts, second, 2) == encoded(second)


def test_a_document_without_a_list_of_services_is_encoded_whole() -> None:
    texts, revisions = ServiceTexts(), Revisions()
    for number, document in enumerate(
        [{"virtual_services": []}, {"other": 1}, {"virtual_services": {"a": 1}}], start=1
    ):
        assert revisions.commit(texts, document, number) == encoded(document)
