"""What an engine cannot render is refused by the model, at every door (finding 7): a
persistence ``header`` with a single quote passed the model and made HAProxy's renderer raise
(500 with a traceback); now it is a field error (422) and nothing is committed.
(Every field, every character: tests/unit/engines/haproxy/test_render_property.py.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from bascule.api import ApiServices


async def test_a_quote_in_the_persistence_header_is_a_field_error(
    client: httpx.AsyncClient,
    committed: int,
    services: ApiServices,
    make_service: Callable[..., dict[str, Any]],
) -> None:
    web = make_service("web", 80)
    web["persistence"] = {"method": "selected_header", "header": "X-It's"}
    whole = await client.put("/api/v1/config", json={"virtual_services": [web]})
    patched = await client.patch(
        "/api/v1/virtual-services/web",
        json={"persistence": {"method": "selected_header", "header": "X-It's"}},
    )
    for response in (whole, patched):
        assert response.status_code == 422, response.text
        [field] = response.json()["error"]["fields"]
        assert field["path"] == "virtual_services[0].persistence.header"
        assert "single quote" in field["message"]
    assert services.config.store.head_number() == committed
