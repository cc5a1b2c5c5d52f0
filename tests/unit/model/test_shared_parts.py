"""Equal parts of a parsed document are one object: a service's check or persistence that
another service has too, and its dumped document (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.model import document as document_module
from bascule.model import edits, parse_document
from bascule.model.document import document_of


@pytest.fixture(autouse=True)
def _fresh_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tables of parts parsed before start empty (other tests fill them)."""
    monkeypatch.setattr(document_module, "_EQUAL_MODELS", {})
    monkeypatch.setattr(document_module, "_DUMPS", {})


def _service(index: int, **fields: Any) -> dict[str, Any]:
    return {
        "name": f"vs{index}",
        "address": "198.18.0.10",
        "port": 8000 + index,
        "real_servers": [{"address": f"198.18.1.{index + 1}", "port": 80}],
        **fields,
    }


def _document() -> dict[str, Any]:
    http = {"type": "http", "path": "/health"}
    return {
        "virtual_services": [
            _service(0, check=http),
            _service(1, check=dict(http)),
            _service(2, check={**http, "interval": 5}),
            _service(3, check={**http, "headers": {"X-Probe": "1"}}),
            _service(4, check={"type": "http", "path": "/health", "rise": 2}),
            _service(5, check=dict(http), persistence={"method": "source_ip"}),
        ]
    }


def test_equal_parts_are_one_object_and_the_document_the_same() -> None:
    config = parse_document(_document())
    checks = [vs.check for vs in config.virtual_services]
    assert checks[0] is checks[1] is checks[5]
    assert checks[2] is not checks[0]  # another interval
    assert checks[3] == parse_document(_document()).virtual_services[3].check
    # a part that is not of plain values (headers given) is its own
    assert checks[3] is not parse_document(_document()).virtual_services[3].check
    # given fields are part of what is equal: rise 2 is the default, but given
    assert checks[4] == checks[0] and checks[4] is not checks[0]
    assert checks[4].model_fields_set != checks[0].model_fields_set
    persistences = [vs.persistence for vs in config.virtual_services]
    assert persistences[0] is persistences[4] and persistences[5] is not persistences[0]
    # the document is what it always was; the mappings of the shared parts are shared
    document = config.to_document()
    assert document["virtual_services"] == config.model_dump(mode="json")["virtual_services"]
    vs_documents = document["virtual_services"]
    assert vs_documents[0]["check"] is vs_documents[1]["check"]
    assert vs_documents[2]["check"] is not vs_documents[0]["check"]
    assert document_of(config.virtual_services[1]) == vs_documents[1]
    assert document_of(config.virtual_services[1])["check"] is vs_documents[1]["check"]
    assert parse_document(document) == config


def test_an_edit_of_a_shared_part_changes_that_service_alone() -> None:
    document = parse_document(_document()).to_document()
    edited = edits.update_virtual_service(document, "vs1", {"check": {"interval": 7}})
    config = parse_document(edited, previous=(document, parse_document(document)))
    assert [vs.check.interval for vs in config.virtual_services] == [2, 7, 5, 2, 2, 2]
    assert document["virtual_services"][0]["check"]["interval"] == 2


def test_a_full_table_starts_again_and_keeps_sharing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document_module, "_MAX_EQUAL_MODELS", 3)
    for interval in range(2, 12):  # parts of documents long gone
        parse_document({"virtual_services": [_service(0, check={"interval": interval})]})
    config = parse_document(_document())
    assert config.virtual_services[0].check is config.virtual_services[1].check
