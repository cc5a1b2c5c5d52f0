"""Backups carry the certificate store: certificates always, private keys only sealed with a
passphrase (POST /backup); a restore puts the store back first, asks for the passphrase of
sealed keys, and says so when the backup has no keys."""

from __future__ import annotations

from typing import Any

import httpx
import yaml

from bascule.api import ApiServices

YAML = {"Content-Type": "application/yaml"}
PASSPHRASE = "correct horse battery staple"
SHOP = {
    "virtual_services": [
        {
            "name": "shop",
            "address": "198.18.0.100",
            "port": 443,
            "type": "https",
            "tls": {"certificates": ["shop"]},
            "real_servers": [{"address": "198.18.0.4", "port": 80}],
        }
    ]
}


async def shop(client: httpx.AsyncClient) -> None:
    made = await client.post(
        "/api/v1/certificates/self-signed", json={"name": "shop", "dns": ["shop.test"]}
    )
    assert made.status_code == 201, made.text
    assert (await client.put("/api/v1/config", json=SHOP)).status_code == 200


async def start_over(client: httpx.AsyncClient) -> None:
    """An appliance that lost both: an empty document and an empty store."""
    assert (await client.put("/api/v1/config", json={"virtual_services": []})).status_code == 200
    assert (await client.delete("/api/v1/certificates/shop")).status_code == 204


async def test_a_backup_carries_the_certificates_never_a_clear_key(
    client: httpx.AsyncClient,
) -> None:
    await shop(client)
    plain = (await client.get("/api/v1/backup")).text
    assert "PRIVATE KEY" not in plain
    store = yaml.safe_load(plain)["certificate_store"]
    assert [e["name"] for e in store["entries"]] == ["shop"] and store["keys"] is None
    sealed = await client.post("/api/v1/backup", json={"passphrase": PASSPHRASE})
    assert sealed.status_code == 200
    assert "PRIVATE KEY" not in sealed.text
    assert yaml.safe_load(sealed.text)["certificate_store"]["keys"]["scheme"] == "scrypt-aes256gcm"
    short = await client.post("/api/v1/backup", json={"passphrase": "short"})
    assert short.status_code == 422


async def test_restore_with_sealed_keys_asks_for_the_passphrase(
    client: httpx.AsyncClient, services: ApiServices
) -> None:
    await shop(client)
    backup = (await client.post("/api/v1/backup", json={"passphrase": PASSPHRASE})).content
    await start_over(client)
    asked = await client.post("/api/v1/restore", content=backup, headers=YAML)
    assert asked.status_code == 422
    assert asked.json()["error"]["fields"][0]["path"] == "passphrase"
    wrong = await client.post(
        "/api/v1/restore", content=backup, headers={**YAML, "X-Backup-Passphrase": "wrong one!!!!"}
    )
    assert wrong.status_code == 422
    assert services.certificates is not None and services.certificates.entries() == []
    planned = await client.post(
        "/api/v1/restore",
        params={"dry_run": "true"},
        content=backup,
        headers={**YAML, "X-Backup-Passphrase": PASSPHRASE},
    )
    assert planned.status_code == 200, planned.text
    assert planned.json()["dry_run"] and services.certificates.entries() == []
    done = await client.post(
        "/api/v1/restore",
        files={"file": ("backup.yaml", backup, "application/yaml")},
        data={"passphrase": PASSPHRASE},
    )
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    assert body["applied"] and "1 certificate store entries restored" in body["message"]
    assert services.certificates.show("shop").has_key


async def test_a_backup_without_keys_says_so(client: httpx.AsyncClient) -> None:
    await shop(client)
    backup = (await client.get("/api/v1/backup")).content
    await start_over(client)
    refused = await client.post("/api/v1/restore", content=backup, headers=YAML)
    assert refused.status_code == 422
    messages = [f["message"] for f in refused.json()["error"]["fields"]]
    assert any("has no private key" in m and "backup without keys" in m for m in messages)
    listed = (await client.get("/api/v1/certificates")).json()["items"]
    assert [(c["name"], c["has_key"]) for c in listed] == [("shop", False)]
