"""``constructed``: ``model_construct`` with the default factories called once per field, not
asked their signature at every call (pydantic's ``model_construct`` does: 1.2 ms a
``VirtualService``), for the engines' shares of a document (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from bascule.model import Configuration, VirtualService
from bascule.model.document import constructed

CASES: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (Configuration, {}),
    (Configuration, {"virtual_services": [], "logging": None}),
    (VirtualService, {"name": "web", "address": "198.18.0.100", "port": 1, "interface": None}),
]


@pytest.mark.parametrize(("kind", "fields"), CASES)
def test_it_is_model_construct(kind: type[BaseModel], fields: dict[str, Any]) -> None:
    made = constructed(kind, **fields)
    expected = kind.model_construct(**fields)
    assert made == expected
    assert made.model_fields_set == expected.model_fields_set == set(fields)
    assert made.model_dump() == expected.model_dump()


def test_each_model_gets_its_own_defaults() -> None:
    first = constructed(Configuration)
    second = constructed(Configuration)
    assert first.virtual_services == second.virtual_services == []
    assert first.virtual_services is not second.virtual_services
    assert first.access_lists is not second.access_lists
