"""The change pipeline's document and diff of an edit: the services it left alone keep their
stored mappings and are not compared, and the result is the whole documents' (issue 15)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bascule.daemon.changes import _document_and_diff
from bascule.model import edits, parse_document
from bascule.reconcile.diff import diff_documents
from bascule.reconcile.planner import structural_signature, structure_changed

Edit = Callable[[dict[str, Any]], dict[str, Any]]


def _head() -> tuple[dict[str, Any], Any]:
    document = parse_document(
        {
            "virtual_services": [
                {
                    "name": f"vs{i}",
                    "address": "198.18.0.10",
                    "port": 8000 + i,
                    "real_servers": [{"address": f"198.18.1.{i + 1}", "port": 80}],
                }
                for i in range(4)
            ]
        }
    ).to_document()
    return document, parse_document(document)


EDITS: list[tuple[str, Edit]] = [
    ("add rs", lambda d: edits.add_real_server(d, "vs1", {"address": "198.18.1.50", "port": 80})),
    ("weight", lambda d: edits.update_real_server(d, "vs2", "198.18.1.3:80", {"weight": 5})),
    ("rename", lambda d: edits.update_virtual_service(d, "vs0", {"name": "first"})),
    ("scheduler", lambda d: edits.update_virtual_service(d, "vs3", {"scheduler": "round_robin"})),
    ("delete vs", lambda d: edits.delete_virtual_service(d, "vs1")),
    (
        "add vs",
        lambda d: edits.add_virtual_service(
            d, {"name": "new", "address": "198.18.0.11", "port": 80, "real_servers": []}
        ),
    ),
]


@pytest.mark.parametrize("edit", [pytest.param(e, id=i) for i, e in EDITS])
def test_the_document_and_diff_are_the_whole_ones(edit: Edit) -> None:
    document, config = _head()
    edited = edit(document)
    new_config = parse_document(edited, previous=(document, config))
    new_document, diff = _document_and_diff(new_config, (document, config))
    assert new_document == new_config.to_document()
    assert diff == diff_documents(document, new_config.to_document())
    # the services the edit left alone are the stored mappings
    shared = sum(
        any(vs is old for old in document["virtual_services"])
        for vs in new_document["virtual_services"]
    )
    assert shared >= 2
    # and the planner tells the structures apart as the whole signatures do
    assert structure_changed(new_config, config) == (
        structural_signature(new_config) != structural_signature(config)
    )


def test_without_the_parsed_head_the_whole_documents_are_compared() -> None:
    document, _ = _head()
    edited = edits.delete_virtual_service(document, "vs2")
    config = parse_document(edited)
    assert _document_and_diff(config, (document, None)) == (
        config.to_document(),
        diff_documents(document, config.to_document()),
    )
