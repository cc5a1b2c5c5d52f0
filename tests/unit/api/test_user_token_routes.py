"""/users, /tokens and /audit: who may do what beyond the permission table, field errors with
their paths, the secret shown once, and the audit log's pages and filters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bascule.daemon.accounts import AccountService
from bascule.model.access import Actor, Role

ClientAs = Callable[[str | None], Awaitable[httpx.AsyncClient]]

USERS = "/api/v1/users"
TOKENS = "/api/v1/tokens"
AUDIT = "/api/v1/audit"


def fields(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    result: list[dict[str, Any]] = response.json()["error"]["fields"]
    return result


# -- users -------------------------------------------------------------------------------------


async def test_an_admin_manages_users(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    created = await admin.post(
        USERS, json={"name": "dave", "role": "operator", "password": "dave-password-1"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "operator"
    assert "dave-password-1" not in created.text
    names = [user["name"] for user in (await admin.get(USERS)).json()["items"]]
    assert names == ["admin", "dave", "operator", "viewer"]
    changed = await admin.patch(f"{USERS}/dave", json={"role": "viewer"})
    assert changed.json()["role"] == "viewer"
    assert (await admin.delete(f"{USERS}/dave")).status_code == 204
    assert (await admin.get(f"{USERS}/dave")).status_code == 404


async def test_user_field_errors_name_the_field(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    short = await admin.post(USERS, json={"name": "dave", "role": "viewer", "password": "short"})
    assert fields(short) == [{"path": "password", "message": "must be at least 8 characters"}]
    bad_name = await admin.post(
        USERS, json={"name": "da ve", "role": "viewer", "password": "long-enough"}
    )
    assert [f["path"] for f in fields(bad_name)] == ["name"]
    taken = await admin.post(
        USERS, json={"name": "viewer", "role": "viewer", "password": "long-enough"}
    )
    assert fields(taken) == [{"path": "name", "message": "a user named viewer already exists"}]
    bad_role = await admin.post(USERS, json={"name": "eve", "role": "root", "password": "x" * 9})
    assert [f["path"] for f in fields(bad_role)] == ["body.role"]
    empty = await admin.patch(f"{USERS}/viewer", json={})
    assert fields(empty) == [{"path": "body", "message": "give a role, a password, or both"}]


async def test_the_last_admin_stays(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    for response in (
        await admin.delete(f"{USERS}/admin"),
        await admin.patch(f"{USERS}/admin", json={"role": "viewer"}),
    ):
        assert response.status_code == 422
        assert response.json()["error"]["kind"] == "not_applicable"
        assert "last administrator" in response.json()["error"]["message"]
    await admin.patch(f"{USERS}/operator", json={"role": "admin"})
    assert (await admin.patch(f"{USERS}/admin", json={"role": "viewer"})).status_code == 200


async def test_anyone_changes_their_own_password_with_the_current_one(
    client_as: ClientAs, accounts: AccountService
) -> None:
    viewer = await client_as("viewer")
    own = f"{USERS}/viewer"
    without = await viewer.patch(own, json={"password": "new-viewer-password"})
    assert fields(without) == [
        {"path": "current_password", "message": "is not your current password"}
    ]
    changed = await viewer.patch(
        own, json={"password": "new-viewer-password", "current_password": "viewer-password"}
    )
    assert changed.status_code == 200, changed.text
    # the change revoked the viewer's tokens, this one included: a new one to go on
    assert (await viewer.get(own)).status_code == 401
    root = Actor(name="root@local", role=Role.admin, via="local", remote="test")
    _, secret = accounts.create_token("again", Role.viewer, by=root, owner="viewer")
    viewer.headers["Authorization"] = f"Bearer {secret}"
    assert (await viewer.get(own)).status_code == 200  # one's own account is readable
    await accounts.login("viewer", "new-viewer-password", remote="test")
    # ...but not someone else's password, nor one's own role.
    other = await viewer.patch(f"{USERS}/operator", json={"password": "whatever-long"})
    promote = await viewer.patch(own, json={"role": "admin"})
    assert (other.status_code, promote.status_code) == (403, 403)


# -- tokens ------------------------------------------------------------------------------------


async def test_a_token_secret_is_shown_once_and_works(client_as: ClientAs, remote_app: Any) -> None:
    operator = await client_as("operator")
    created = await operator.post(TOKENS, json={"name": "deploy", "role": "viewer"})
    assert created.status_code == 201, created.text
    body = created.json()
    secret, token = body["secret"], body["token"]
    assert secret.startswith(f"bsc_{token['id']}_")
    assert (token["owner"], token["role"], token["revoked_at"]) == ("operator", "viewer", None)
    listed = (await operator.get(TOKENS)).json()["items"]
    assert secret not in str(listed)
    assert {t["name"] for t in listed} == {"operator token", "deploy"}

    transport = httpx.ASGITransport(app=remote_app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="https://bascule",
        headers={"Authorization": f"Bearer {secret}"},
    ) as script:
        who = (await script.get("/api/v1/auth/whoami")).json()
        assert (who["name"], who["role"], who["via"]) == ("operator", "viewer", "token")
        assert (await operator.delete(f"{TOKENS}/{token['id']}")).status_code == 204
        assert (await script.get("/api/v1/auth/whoami")).status_code == 401
    revoked = [t for t in (await operator.get(TOKENS)).json()["items"] if t["name"] == "deploy"]
    assert revoked[0]["revoked_at"] is not None


async def test_non_admins_make_tokens_only_for_themselves_and_below_their_role(
    client_as: ClientAs,
) -> None:
    operator = await client_as("operator")
    above = await operator.post(TOKENS, json={"name": "x", "role": "admin"})
    for_other = await operator.post(TOKENS, json={"name": "x", "role": "viewer", "owner": "viewer"})
    others = await operator.get(TOKENS, params={"owner": "viewer"})
    assert (above.status_code, for_other.status_code, others.status_code) == (403, 403, 403)
    assert "may not create a token with the role admin" in above.json()["error"]["message"]


async def test_non_admins_revoke_only_their_own(
    client_as: ClientAs, tokens: dict[str, str]
) -> None:
    viewer = await client_as("viewer")
    operator_token = tokens["operator"].split("_")[1]
    refused = await viewer.delete(f"{TOKENS}/{operator_token}")
    assert refused.status_code == 403
    assert (await viewer.delete(f"{TOKENS}/ffffffffffffffff")).status_code == 404


async def test_an_admin_sees_and_makes_every_token(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    made = await admin.post(
        TOKENS, json={"name": "for viewer", "role": "viewer", "owner": "viewer"}
    )
    assert made.status_code == 201
    owners = sorted(t["owner"] for t in (await admin.get(TOKENS)).json()["items"])
    assert owners == ["admin", "operator", "viewer", "viewer"]
    only = (await admin.get(TOKENS, params={"owner": "viewer"})).json()["items"]
    assert {t["owner"] for t in only} == {"viewer"}
    nobody = await admin.post(TOKENS, json={"name": "x", "role": "viewer", "owner": "nobody"})
    assert fields(nobody) == [{"path": "owner", "message": "there is no user named nobody"}]


async def test_a_token_follows_its_owner(client_as: ClientAs, tokens: dict[str, str]) -> None:
    admin = await client_as("admin")
    operator = await client_as("operator")
    await admin.patch(f"{USERS}/operator", json={"role": "viewer"})
    who = (await operator.get("/api/v1/auth/whoami")).json()
    assert who["role"] == "viewer"  # the token says operator, its owner is a viewer now
    await admin.delete(f"{USERS}/operator")
    assert (await operator.get("/api/v1/auth/whoami")).status_code == 401


# -- audit -------------------------------------------------------------------------------------


async def test_the_audit_log_pages_newest_first_and_filters(
    client_as: ClientAs, committed: int
) -> None:
    admin = await client_as("admin")
    operator = await client_as("operator")
    rs = "/api/v1/virtual-services/web/real-servers/198.18.0.4:80"
    await operator.patch(rs, json={"weight": 10})
    await operator.patch(rs, json={"port": 81})  # refused: 403, recorded as access.denied
    await admin.patch(rs, json={"weight": 20})
    stale = await admin.patch(rs, json={"weight": 5}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409

    page = (await admin.get(AUDIT, params={"limit": 3})).json()
    assert page["total"] >= 6 and page["next_offset"] == 3
    newest = page["items"][0]
    assert (newest["actor"], newest["action"], newest["outcome"]) == (
        "admin",
        "config.edit",
        "refused",
    )
    assert "stale" in newest["detail"]
    ok = page["items"][1]
    assert (ok["actor"], ok["remote"], ok["revision"]) == ("admin", "127.0.0.1", committed + 2)
    assert ok["diff"] == [
        {
            "op": "change",
            "path": "virtual_services[web].real_servers[198.18.0.4:80].weight",
            "old": 10,
            "new": 20,
        }
    ]
    by_operator = (await admin.get(AUDIT, params={"actor": "operator"})).json()
    assert [e["action"] for e in by_operator["items"]] == ["access.denied", "config.edit"]
    tokens_made = (await admin.get(AUDIT, params={"action": "token.create"})).json()
    assert tokens_made["total"] == 3
    bad = await admin.get(AUDIT, params={"limit": 0})
    assert fields(bad) == [{"path": "query.limit", "message": "must be at least 1"}]
