"""Free text through the WUI (finding 5): a token's name with a control character is refused
beside its field and nothing is stored; text stored before this rule is shown escaped by the
HTML environment (autoescape) and never breaks a page."""

from __future__ import annotations

import pytest
from wui_client import Browser

from bascule.daemon.accounts import AccountService


@pytest.mark.parametrize("name", ["ci\x1b[2J", "ci\x9bjob", "ci\u202ejob"])
async def test_a_token_name_with_a_control_character_is_refused(
    admin: Browser, accounts: AccountService, name: str
) -> None:
    response = await admin.post("/tokens", {"name": name, "role": "viewer", "owner": ""})
    assert response.status_code == 422
    assert "must not contain control characters" in response.text
    assert accounts.tokens() == []
