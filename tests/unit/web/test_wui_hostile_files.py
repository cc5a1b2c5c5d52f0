"""Hostile backup files through the WUI (findings 7 and 9): a billion laughs (aliases that
expand beyond the bound) and nesting too deep are refused beside the upload field, never a
500; nothing changes."""

from __future__ import annotations

import re

import pytest
from hostile_documents import BILLION_LAUGHS, DEEP_JSON, DEEP_YAML
from wui_client import Browser

from bascule.daemon.service import ConfigService


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (BILLION_LAUGHS, "expands to more than"),
        (DEEP_YAML, "nested deeper than"),
        (DEEP_JSON, "nested deeper than"),
    ],
)
async def test_a_hostile_file_is_refused_beside_the_field(
    admin: Browser, web_service: int, service: ConfigService, content: str, words: str
) -> None:
    response = await admin.client.post(
        "/backup/restore",
        data={"csrf_token": admin.csrf},
        files={"file": ("hostile.yaml", content.encode(), "application/yaml")},
    )
    assert response.status_code == 422
    error = re.search(r'<p class="field-error" id="error-file">([^<]*)</p>', response.text)
    assert error is not None and words in error[1]
    assert service.store.head_number() == 1
