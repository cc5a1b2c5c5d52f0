"""ServiceTexts: the stored text of a document, each unchanged service encoded once."""

from __future__ import annotations

import json
from typing import Any

from bascule.store.revisions import ServiceTexts


def encoded(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def test_the_text_is_the_documents_json_and_reuses_the_shared_services() -> None:
    services = [{"name": f"vs-{i}", "note": "é\u2028", "ports": [i]} for i in range(3)]
    first = {"schema_version": 9, "virtual_services": services, "logging": {"a": 1}}
    texts = ServiceTexts()
    assert texts.encode(first) == encoded(first)
    # a document sharing two services with the last one, one of them replaced
    changed = {**services[1], "ports": [42]}
    second = {**first, "virtual_services": [services[0], changed, services[2]]}
    assert texts.encode(second) == encoded(second)
    # a shared service changed in place would be stale: documents are never changed in place,
    # so a copy is what a change makes; the cache only follows identity
    assert texts.encode({"virtual_services": []}) == encoded({"virtual_services": []})
    assert texts.encode({"other": 1}) == encoded({"other": 1})
