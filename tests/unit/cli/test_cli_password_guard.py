"""The password guard through the CLI (finding 1): ``bascule --url ... user passwd <self>``
sends the current password it prompts for; wrong guesses lock like logins, and the lock is
said in words. (On the unix socket no password is ever checked: its caller is root.)"""

from __future__ import annotations

import asyncio

from test_cli_remote import Served, error, remote, served  # noqa: F401 (the fixture)

from bascule.errors import LockedOut


def test_guessing_ones_current_password_is_locked(served: Served) -> None:  # noqa: F811
    messages = [
        error(
            remote(
                served,
                "viewer",
                "user",
                "passwd",
                "viewer",
                input=f"guess-{i}\nnew-password-1\nnew-password-1\n",
            )
        )
        for i in range(6)
    ]
    assert ["not your current password" in m for m in messages] == [True] * 4 + [False] * 2
    assert all("too many failed logins" in m for m in messages[4:])
    right = remote(
        served,
        "viewer",
        "user",
        "passwd",
        "viewer",
        input="viewer-password\nxxxxxxxxx\nxxxxxxxxx\n",
    )
    assert "too many failed logins" in error(right)
    accounts = served.services.accounts
    try:
        asyncio.run(accounts.login("viewer", "viewer-password", remote="127.0.0.1"))
    except LockedOut:
        pass
    else:  # pragma: no cover
        raise AssertionError("the login from the guesser's address must be locked too")
    asyncio.run(accounts.login("viewer", "viewer-password", remote="192.0.2.1"))
