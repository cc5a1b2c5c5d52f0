"""``If-Match`` is read after the permission check and is bounded (finding 7): 5,000 digits
gave a 500 even to a viewer (the header was parsed, int() refused it, before the role was
looked at). Now a role that may not write gets 403 whatever it sent, and one that may gets a
422 naming the header; a revision line of 5,000 digits in a file is nobody's revision."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from bascule.api import ApiServices
from bascule.cli.config import REVISION_LINE
from bascule.daemon.backup import backup_revision

ClientAs = Callable[[str | None], Awaitable[httpx.AsyncClient]]
RS = "/api/v1/virtual-services/web/real-servers/198.18.0.4:80"
HUGE = "9" * 5000


@pytest.mark.parametrize("if_match", [HUGE, f'"{HUGE}"', str(2**63), "1" * 100])
async def test_a_role_that_may_not_write_is_told_so(
    client_as: ClientAs, committed: int, services: ApiServices, if_match: str
) -> None:
    viewer = await client_as("viewer")
    operator = await client_as("operator")
    headers = {"If-Match": if_match}
    for response in (
        await viewer.patch(RS, json={"weight": 5}, headers=headers),
        await viewer.post(f"{RS}/drain", headers=headers),
        await viewer.put("/api/v1/config", json={"virtual_services": []}, headers=headers),
        await operator.patch(RS, json={"port": 81}, headers=headers),
    ):
        assert response.status_code == 403, response.text
    assert services.config.store.head_number() == committed


@pytest.mark.parametrize("if_match", [HUGE, str(2**63), "1" * 100])
async def test_a_role_that_may_is_told_the_header_is_wrong(
    client_as: ClientAs, client: httpx.AsyncClient, committed: int, if_match: str
) -> None:
    operator = await client_as("operator")
    admin = await client_as("admin")
    headers = {"If-Match": if_match}
    for response in (
        await operator.patch(RS, json={"weight": 5}, headers=headers),
        await admin.put("/api/v1/config", json={"virtual_services": []}, headers=headers),
        await client.post(f"{RS}/drain", headers=headers),  # the unix socket's door
    ):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["fields"][0]["path"] == "header.If-Match"
        assert len(response.text) < 2000  # the 5,000 digits are not echoed back


def test_a_huge_revision_line_is_not_a_revision() -> None:
    line = f"# bascule revision {HUGE}"
    assert REVISION_LINE.match(line) is None
    assert backup_revision(line + "\nvirtual_services: []\n") is None
