"""/api/v1/backup and /api/v1/restore: the document as a YAML file, and back."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from bascule.store.revisions import RevisionStore

YAML = {"Content-Type": "application/yaml"}


async def test_backup_is_the_document_under_its_revision_line(
    client: httpx.AsyncClient, committed: int
) -> None:
    response = await client.get("/api/v1/backup")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert response.headers["content-disposition"] == (
        'attachment; filename="bascule-revision-1.yaml"'
    )
    assert response.headers["etag"] == '"1"'
    first, _ = response.text.split("\n", 1)
    assert first == "# bascule revision 1"
    document = yaml.safe_load(response.text)
    assert document == (await client.get("/api/v1/config")).json()["document"]


async def test_backup_of_an_empty_store(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/backup")
    assert response.text.startswith("# bascule revision 0\n")
    assert yaml.safe_load(response.text) == {"schema_version": 2, "virtual_services": []}


async def test_restore_a_backup_as_a_new_revision(
    client: httpx.AsyncClient,
    store: RevisionStore,
    committed: int,
    make_document: Callable[..., dict[str, Any]],
) -> None:
    backup = (await client.get("/api/v1/backup")).content
    changed = await client.put("/api/v1/config", json=make_document(500, 500))
    assert changed.json()["revision"] == 2
    response = await client.post("/api/v1/restore", content=backup, headers=YAML)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["revision"], body["applied"]) == (3, True)
    head = store.head()
    assert head is not None
    assert head.message == "restore from backup"
    assert head.document == store.get(1).document


async def test_restore_json_and_multipart(
    client: httpx.AsyncClient, store: RevisionStore, make_document: Callable[..., dict[str, Any]]
) -> None:
    document = make_document(700, 700)
    response = await client.post(
        "/api/v1/restore",
        content=json.dumps(document),
        headers={"Content-Type": "application/json"},
    )
    assert response.json()["revision"] == 1
    upload = yaml.safe_dump(make_document(800, 800)).encode()
    response = await client.post(
        "/api/v1/restore", files={"file": ("backup.yaml", upload, "application/yaml")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["revision"] == 2
    head = store.head()
    assert head is not None
    assert head.document["virtual_services"][0]["real_servers"][0]["weight"] == 800


async def test_a_dry_run_restore_changes_nothing(
    client: httpx.AsyncClient, store: RevisionStore, make_document: Callable[..., dict[str, Any]]
) -> None:
    response = await client.post(
        "/api/v1/restore",
        params={"dry_run": "true"},
        content=yaml.safe_dump(make_document()),
        headers=YAML,
    )
    body = response.json()
    assert (body["dry_run"], body["changed"], body["revision"]) == (True, True, None)
    assert store.head() is None


async def test_an_invalid_backup_names_the_fields_and_changes_nothing(
    client: httpx.AsyncClient, store: RevisionStore, committed: int
) -> None:
    bad = "virtual_services:\n  - name: web\n    address: 198.18.0.100\n    port: 0\n"
    response = await client.post("/api/v1/restore", content=bad, headers=YAML)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["kind"] == "invalid_configuration"
    assert error["fields"][0]["path"] == "virtual_services[0].port"
    head = store.head()
    assert head is not None
    assert head.number == committed


async def test_a_stale_if_match_is_a_conflict(client: httpx.AsyncClient, committed: int) -> None:
    backup = (await client.get("/api/v1/backup")).content
    response = await client.post(
        "/api/v1/restore", content=backup, headers={**YAML, "If-Match": '"7"'}
    )
    assert response.status_code == 409
    assert response.json()["error"]["current_revision"] == committed


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"virtual_services: [\n", "at line 2"),
        (b"", "the file is empty"),
        (b"- a\n- b\n", "does not hold a configuration document"),
        (b"\xff\xfe", "is not text (UTF-8)"),
        (b"a: &x [*x]\n", "contains itself"),  # aliases are bounded (bascule.safeyaml)
        (b"x" * (16 * 1024 * 1024 + 10), "larger than 16 MiB"),
    ],
)
async def test_what_is_not_a_backup_changes_nothing(
    client: httpx.AsyncClient, store: RevisionStore, content: bytes, message: str
) -> None:
    response = await client.post("/api/v1/restore", content=content, headers=YAML)
    assert response.status_code == 422
    [field] = response.json()["error"]["fields"]
    assert message in field["message"]
    assert store.head() is None


async def test_a_form_without_the_file_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/restore", files={"other": ("x", b"{}", "text/plain")})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "file"


async def test_restore_needs_configure_and_backup_needs_read(
    client_as: Any, committed: int
) -> None:
    backup = (await (await client_as("viewer")).get("/api/v1/backup")).content
    assert backup.startswith(b"# bascule revision 1")
    assert (await (await client_as(None)).get("/api/v1/backup")).status_code == 401
    for role, status in (("viewer", 403), ("operator", 403), ("admin", 200), (None, 401)):
        caller = await client_as(role)
        response = await caller.post("/api/v1/restore", content=backup, headers=YAML)
        assert response.status_code == status, (role, response.text)
