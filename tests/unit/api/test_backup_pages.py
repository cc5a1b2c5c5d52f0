"""Backups carry the page store (``page_store``): every page with its content; a restore puts
the pages back first, so a document whose ``not_available`` names one is restored with it."""

from __future__ import annotations

import httpx
import yaml

from bascule.api import ApiServices

YAML = {"Content-Type": "application/yaml"}
PAGE = "<h1>Back soon</h1>\n"
SITE = {
    "virtual_services": [
        {
            "name": "site",
            "address": "198.18.0.100",
            "port": 80,
            "type": "http",
            "not_available": {"respond": {"code": 503, "body_file": "maintenance"}},
            "real_servers": [{"address": "198.18.0.4", "port": 80}],
        }
    ]
}


async def site(client: httpx.AsyncClient) -> None:
    added = await client.post("/api/v1/pages", json={"name": "maintenance", "content": PAGE})
    assert added.status_code == 201, added.text
    assert (await client.put("/api/v1/config", json=SITE)).status_code == 200


async def test_a_backup_carries_the_pages_and_a_restore_puts_them_back(
    client: httpx.AsyncClient, services: ApiServices
) -> None:
    await site(client)
    backup = (await client.get("/api/v1/backup")).content
    assert yaml.safe_load(backup)["page_store"] == [{"name": "maintenance", "content": PAGE}]
    # an appliance that lost both: an empty document and an empty page store
    assert (await client.put("/api/v1/config", json={"virtual_services": []})).status_code == 200
    assert (await client.delete("/api/v1/pages/maintenance")).status_code == 204
    planned = await client.post("/api/v1/restore", params={"dry_run": "true"}, content=backup,
                                headers=YAML)  # fmt: skip
    assert planned.status_code == 200, planned.text
    assert services.pages is not None and services.pages.entries() == []  # a plan changes nothing
    restored = await client.post("/api/v1/restore", content=backup, headers=YAML)
    assert restored.status_code == 200, restored.text
    assert "1 page of the page store restored" in restored.json()["message"]
    assert (await client.get("/api/v1/pages/maintenance")).json()["content"] == PAGE
    document = (await client.get("/api/v1/config")).json()["document"]
    assert document["virtual_services"][0]["not_available"]["respond"]["body_file"] == (
        "maintenance"
    )
    assert (services.pages.directory / "maintenance.html").read_text() == PAGE


async def test_a_bad_page_in_a_backup_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, services: ApiServices
) -> None:
    bad = {**SITE, "page_store": [{"name": "maintenance", "content": "a\x01b"},
                                  {"name": "Bad Name", "content": "x"}]}  # fmt: skip
    refused = await client.post("/api/v1/restore", content=yaml.safe_dump(bad), headers=YAML)
    assert refused.status_code == 422
    paths = [f["path"] for f in refused.json()["error"]["fields"]]
    assert paths == ["page_store[0].content", "page_store[1].name"]
    assert services.pages is not None and services.pages.entries() == []
    assert (await client.get("/api/v1/config")).json()["document"]["virtual_services"] == []


async def test_a_backup_without_pages_has_no_section(client: httpx.AsyncClient) -> None:
    assert "page_store" not in yaml.safe_load((await client.get("/api/v1/backup")).content)
