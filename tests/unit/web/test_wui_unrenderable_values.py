"""What an engine cannot render is refused beside its field in the WUI (finding 7): a
persistence header with a single quote."""

from __future__ import annotations

from wui_client import Browser

from bascule.store.revisions import RevisionStore


async def test_a_quote_in_the_persistence_header_is_refused_beside_it(
    admin: Browser, web_service: int, store: RevisionStore
) -> None:
    form = {
        "name": "web",
        "address": "198.18.0.100",
        "port": "80",
        "protocol": "tcp",
        "type": "http",
        "mode": "l7",
        "enabled": "true",
        "scheduler": "round_robin",
        "persistence.method": "selected_header",
        "persistence.header": "X-It's",
    }
    response = await admin.post("/virtual-services/web", form)
    assert response.status_code == 422
    assert 'id="error-persistence.header">must not contain a single quote' in response.text
    assert store.head_number() == web_service
