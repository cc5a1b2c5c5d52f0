"""Sealed backups carry the HTTP user store (``http_user_store``): the names in clear, the
yescrypt hashes sealed with the passphrase, never a password; a restore opens them with it
and puts the users back before the document whose ``authentication`` names them."""

from __future__ import annotations

import httpx
import yaml

from bascule.api import ApiServices

YAML = {"Content-Type": "application/yaml"}
PASSPHRASE = "a passphrase of twelve"
SITE = {
    "virtual_services": [
        {
            "name": "site",
            "address": "198.18.0.100",
            "port": 80,
            "type": "http",
            "authentication": {"realm": "staff", "users": ["ops"]},
            "real_servers": [{"address": "198.18.0.4", "port": 80}],
        }
    ]
}


async def site(client: httpx.AsyncClient) -> None:
    added = await client.post("/api/v1/http-users", json={"name": "ops", "password": "ops-pass-1"})
    assert added.status_code == 201, added.text
    assert (await client.put("/api/v1/config", json=SITE)).status_code == 200


def names(services: ApiServices) -> list[str]:
    assert services.http_users is not None
    return [user.name for user in services.http_users.entries()]


async def test_a_sealed_backup_carries_the_users_and_a_restore_puts_them_back(
    client: httpx.AsyncClient, services: ApiServices
) -> None:
    await site(client)
    assert services.http_users is not None
    hashed = services.http_users.store.hashes()["ops"]
    plain = await client.get("/api/v1/backup")
    assert "http_user_store" not in yaml.safe_load(plain.content)  # a reader's backup: none
    sealed = await client.post("/api/v1/backup", json={"passphrase": PASSPHRASE})
    assert sealed.status_code == 200, sealed.text
    section = yaml.safe_load(sealed.content)["http_user_store"]
    assert [user["name"] for user in section["users"]] == ["ops"]
    assert hashed not in sealed.text and "$y$" not in sealed.text and "ops-pass" not in sealed.text
    # an appliance that lost both: an empty document and an empty HTTP user store
    assert (await client.put("/api/v1/config", json={"virtual_services": []})).status_code == 200
    assert (await client.delete("/api/v1/http-users/ops")).status_code == 204
    headers = {**YAML, "X-Backup-Passphrase": PASSPHRASE}
    planned = await client.post(
        "/api/v1/restore", params={"dry_run": "true"}, content=sealed.content, headers=headers
    )
    assert planned.status_code == 200, planned.text
    assert names(services) == []  # a plan changes nothing
    restored = await client.post("/api/v1/restore", content=sealed.content, headers=headers)
    assert restored.status_code == 200, restored.text
    assert "1 HTTP user restored" in restored.json()["message"]
    assert services.http_users.store.hashes() == {"ops": hashed}
    document = (await client.get("/api/v1/config")).json()["document"]
    assert document["virtual_services"][0]["authentication"]["users"] == ["ops"]


async def test_a_wrong_passphrase_restores_nothing(
    client: httpx.AsyncClient, services: ApiServices
) -> None:
    await site(client)
    sealed = (await client.post("/api/v1/backup", json={"passphrase": PASSPHRASE})).content
    assert (await client.put("/api/v1/config", json={"virtual_services": []})).status_code == 200
    assert (await client.delete("/api/v1/http-users/ops")).status_code == 204
    for headers in (YAML, {**YAML, "X-Backup-Passphrase": "not the passphrase"}):
        refused = await client.post("/api/v1/restore", content=sealed, headers=headers)
        assert refused.status_code == 422, refused.text
        assert [f["path"] for f in refused.json()["error"]["fields"]] == ["passphrase"]
    assert names(services) == []
    document = (await client.get("/api/v1/config")).json()["document"]
    assert document["virtual_services"] == []
