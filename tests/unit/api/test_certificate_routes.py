"""/certificates and /ca-bundles: imports by PEM and PKCS#12, refusals naming the field, the
document's names checked against the store, deletion refused while used, and no answer of
any route of the API ever carrying a private key."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from make_certificates import DAY, Hierarchy, Issued
from make_certificates import hierarchy as make_hierarchy
from make_certificates import issue as issue_at
from test_access_routes import ROUTES, call

from bascule.api import ApiServices

KEY_MARKERS = ("PRIVATE KEY", "BEGIN EC", "BEGIN RSA")


def issue(common_name: str, **fields: Any) -> Issued:
    """A certificate valid now (the store refuses expired ones for new use)."""
    now = datetime.now(UTC)
    return issue_at(common_name, not_before=now - DAY, not_after=now + 60 * DAY, **fields)


def hierarchy() -> Hierarchy:
    return make_hierarchy(datetime.now(UTC))


def https(*names: str) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "shop",
                "address": "198.18.0.100",
                "port": 443,
                "type": "https",
                "tls": {"certificates": list(names)},
                "real_servers": [{"address": "198.18.0.4", "port": 80}],
            }
        ]
    }


def no_key_in(response: httpx.Response) -> None:
    text = response.text
    assert not any(marker in text for marker in KEY_MARKERS), response.request.url


async def test_import_pem_and_read_back_without_the_key(client: httpx.AsyncClient) -> None:
    h = hierarchy()
    response = await client.post(
        "/api/v1/certificates",
        json={
            "name": "shop",
            "cert": h.leaf.pem.decode(),
            "key": h.leaf.key_pem.decode(),
            "chain": h.intermediate.pem.decode(),
        },
    )
    assert response.status_code == 201, response.text
    no_key_in(response)
    body = response.json()["certificate"]
    assert body["certificate"]["dns_names"] == ["www.example.test", "*.shop.example.test"]
    assert body["chain"][0]["subject"] == "CN=Test Intermediate CA"
    assert body["has_key"] is True and body["used_by"] == []
    listed = await client.get("/api/v1/certificates")
    no_key_in(listed)
    assert [item["name"] for item in listed.json()["items"]] == ["shop"]


async def test_import_pkcs12_and_its_wrong_password(client: httpx.AsyncClient) -> None:
    leaf = issue("p12.test", dns=("p12.test",))
    data = pkcs12.serialize_key_and_certificates(
        b"p12",
        leaf.key,  # type: ignore[arg-type]
        leaf.certificate,
        None,
        serialization.BestAvailableEncryption(b"secret"),
    )
    encoded = base64.b64encode(data).decode()
    wrong = await client.post(
        "/api/v1/certificates", json={"name": "p12", "pkcs12": encoded, "password": "nope"}
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["fields"][0]["path"] == "pkcs12"
    right = await client.post(
        "/api/v1/certificates", json={"name": "p12", "pkcs12": encoded, "password": "secret"}
    )
    assert right.status_code == 201, right.text


async def test_refusals_name_the_field(client: httpx.AsyncClient) -> None:
    h = hierarchy()
    other = issue("other.test")
    cases = [
        ({"name": "a", "cert": h.leaf.pem.decode(), "key": other.key_pem.decode()}, "key"),
        ({"name": "a", "cert": "garbage"}, "cert"),
        ({"name": "a"}, "cert"),
        ({"name": "a", "pkcs12": "!!!"}, "pkcs12"),
        (
            {
                "name": "a",
                "cert": h.leaf.pem.decode(),
                "key": h.leaf.key_pem.decode(),
                "chain": h.root.pem.decode() + h.intermediate.pem.decode(),
            },
            "chain",
        ),
    ]
    for body, field in cases:
        response = await client.post("/api/v1/certificates", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["fields"][0]["path"] == field, response.text
    assert (await client.get("/api/v1/certificates")).json()["items"] == []


async def test_names_checked_and_delete_refused_while_used(client: httpx.AsyncClient) -> None:
    refused = await client.put("/api/v1/config", json=https("shop"))
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"][0]["path"] == "virtual_services[0].tls.certificates[0]"
    made = await client.post(
        "/api/v1/certificates/self-signed", json={"name": "shop", "dns": ["shop.test"]}
    )
    assert made.status_code == 201, made.text
    assert (await client.put("/api/v1/config", json=https("shop"))).status_code == 200
    shown = (await client.get("/api/v1/certificates/shop")).json()
    assert shown["used_by"] == ["shop"]
    deleted = await client.delete("/api/v1/certificates/shop")
    assert deleted.status_code == 422
    assert "used by virtual service shop" in deleted.json()["error"]["fields"][0]["message"]
    missing = await client.get("/api/v1/certificates/nothing")
    assert missing.status_code == 404


async def test_ca_bundles(client: httpx.AsyncClient) -> None:
    h = hierarchy()
    added = await client.post(
        "/api/v1/ca-bundles", json={"name": "corp", "pem": h.root.pem.decode()}
    )
    assert added.status_code == 201, added.text
    assert added.json()["certificate"]["kind"] == "ca_bundle"
    replaced = await client.put(
        "/api/v1/ca-bundles/corp", json={"pem": (h.root.pem + h.intermediate.pem).decode()}
    )
    assert replaced.status_code == 200
    assert len(replaced.json()["certificate"]["chain"]) == 1


async def test_no_route_ever_answers_with_a_private_key(
    services: ApiServices, client_as: Any, tokens: dict[str, str], committed: int
) -> None:
    """Every route of the API as an administrator, with certificates and keys in the store:
    no answer holds key material (the route table of test_access_routes covers them all)."""
    admin = await client_as("admin")
    for route in ROUTES:
        response = await call(admin, route, tokens)
        no_key_in(response)
    backup = await admin.get("/api/v1/backup")
    no_key_in(backup)


async def test_metrics_carry_each_certificates_expiry(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/v1/certificates/self-signed", json={"name": "shop", "dns": ["a.test"], "days": 10}
    )
    text = (await client.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("bascule_certificate_expiry_seconds{"))
    assert line.startswith('bascule_certificate_expiry_seconds{name="shop"} ')
    assert 9 * 86400 < float(line.split()[-1]) <= 10 * 86400
    status = (await client.get("/api/v1/status")).json()
    assert [(c["name"], c["level"]) for c in status["certificates"]] == [("shop", "warning")]
