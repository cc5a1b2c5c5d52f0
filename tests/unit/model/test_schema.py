"""The document's schema versions (model/schema.py): one test per migration, documents of a
newer Bascule refused with both versions named, and a document already in the newer shape
left as it is whatever version it says (people write documents without one)."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.errors import InvalidConfiguration
from bascule.model import parse_document
from bascule.model.schema import MIGRATIONS, SCHEMA_VERSION, migrate

Document = dict[str, Any]


def sticky(address: str, **persistence: Any) -> Document:
    return {
        "name": "web",
        "address": address,
        "port": 80,
        "persistence": {"method": "source_ip", **persistence},
        "real_servers": [{"address": address, "port": 8080}],
    }


def persistence_of(document: Document) -> Any:
    return parse_document(document).virtual_services[0].persistence


def test_every_version_has_its_migration() -> None:
    assert SCHEMA_VERSION == 2
    assert len(MIGRATIONS) == SCHEMA_VERSION - 1


# -- 1 -> 2: source_mask per address family ---------------------------------------------------


def test_v1_an_ipv6_services_source_mask_becomes_its_source_mask6() -> None:
    v1 = {"virtual_services": [sticky("2001:2::100", source_mask=64)]}
    migrated = migrate(v1)
    assert migrated["schema_version"] == 2
    assert migrated["virtual_services"][0]["persistence"] == {
        "method": "source_ip",
        "source_mask6": 64,
    }
    persistence = persistence_of(v1)
    assert (persistence.source_mask, persistence.source_mask6) == (32, 64)
    assert v1["virtual_services"][0]["persistence"]["source_mask"] == 64  # a copy was changed


def test_v1_the_old_default_on_ipv6_becomes_one_address_per_client() -> None:
    # version 1 exported every default, so each IPv6 service has source_mask: 32
    v1 = {"schema_version": 1, "virtual_services": [sticky("2001:2::100", source_mask=32)]}
    assert persistence_of(v1).source_mask6 == 128


def test_v1_ipv4_services_are_unchanged() -> None:
    v1 = {"virtual_services": [sticky("198.18.0.100", source_mask=24)]}
    assert migrate(v1)["virtual_services"] == v1["virtual_services"]
    assert persistence_of(v1).source_mask == 24


def test_a_document_already_in_the_v2_shape_is_left_as_it_is() -> None:
    # written by hand today, without schema_version: read as version 1, changed by nothing
    today = {"virtual_services": [sticky("2001:2::100", source_mask6=56)]}
    assert migrate(today)["virtual_services"] == today["virtual_services"]
    dual = sticky("198.18.0.100", source_mask=24, source_mask6=56)
    dual["address6"] = "2001:2::100"
    assert migrate({"virtual_services": [dual]})["virtual_services"] == [dual]
    both = {"virtual_services": [sticky("2001:2::100", source_mask=24, source_mask6=56)]}
    assert migrate(both)["virtual_services"] == both["virtual_services"]


def test_the_current_version_is_exported() -> None:
    exported = parse_document({"virtual_services": []}).to_document()
    assert list(exported) == ["schema_version", "virtual_services"]
    assert exported["schema_version"] == SCHEMA_VERSION
    assert migrate(exported) == exported


# -- versions it cannot read ------------------------------------------------------------------


def test_a_newer_document_is_refused_naming_both_versions() -> None:
    with pytest.raises(InvalidConfiguration) as refused:
        parse_document({"schema_version": 3, "virtual_services": []})
    [error] = refused.value.errors
    assert error.path == "schema_version"
    assert error.message == (
        "3 is newer than this Bascule reads (up to 2): the document was written by a newer "
        "Bascule; upgrade this one"
    )


@pytest.mark.parametrize("version", [0, -1, "2", True, 1.5, None])
def test_a_version_that_is_not_one_is_refused(version: object) -> None:
    with pytest.raises(InvalidConfiguration) as refused:
        parse_document({"schema_version": version, "virtual_services": []})
    assert [(e.path, e.message) for e in refused.value.errors] == [
        ("schema_version", "must be a schema version: 1 or more")
    ]
