"""The WUI says what a password reset does (finding 9): the user's sessions end and their API
tokens are revoked."""

from __future__ import annotations

from wui_client import Browser

from bascule.daemon.accounts import AccountService
from bascule.model.access import Actor, Role


async def test_a_reset_revokes_the_users_tokens_and_says_so(
    admin: Browser, accounts: AccountService
) -> None:
    root = Actor(name="root@local", role=Role.admin, via="local", remote="test")
    _, secret = accounts.create_token("ci", Role.viewer, by=root, owner="victor")
    response = await admin.post("/users/victor/password", {"password": "a new long password"})
    assert response.status_code == 303
    page = await admin.client.get(response.headers["location"])
    assert "their API tokens revoked" in page.text
    assert accounts.authenticate_token(secret, remote="x") is None
