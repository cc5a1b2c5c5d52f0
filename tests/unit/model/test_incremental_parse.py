"""``parse_document(data, previous=...)``: an edit is validated at the cost of what it changed,
with the same result and the same errors as a parse of the whole document (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.errors import InvalidConfiguration
from bascule.model import edits, parse_document


def _document(services: int = 4) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": f"vs{i}",
                "address": "198.18.0.10",
                "port": 8000 + i,
                "real_servers": [{"address": f"198.18.1.{i + 1}", "port": 80}],
            }
            for i in range(services)
        ]
    }


def _head() -> tuple[dict[str, Any], Any]:
    document = parse_document(_document()).to_document()
    return document, parse_document(document)


def test_an_edit_keeps_the_services_it_left_alone_and_equals_a_whole_parse() -> None:
    document, config = _head()
    edited = edits.add_real_server(document, "vs2", {"address": "198.18.1.99", "port": 80})
    incremental = parse_document(edited, previous=(document, config))
    assert incremental == parse_document(edited)
    pairs = zip(incremental.virtual_services, config.virtual_services, strict=True)
    kept = [new is old for new, old in pairs]
    assert kept == [True, True, False, True]


def test_an_invalid_edit_names_the_same_field_as_a_whole_parse() -> None:
    document, config = _head()
    edited = edits.update_real_server(document, "vs3", "198.18.1.4:80", {"weight": -1})
    with pytest.raises(InvalidConfiguration) as whole:
        parse_document(edited)
    with pytest.raises(InvalidConfiguration) as incremental:
        parse_document(edited, previous=(document, config))
    assert incremental.value.errors == whole.value.errors
    assert incremental.value.errors[0].path.startswith("virtual_services[3].real_servers[0]")


def test_an_invariant_across_services_is_still_judged() -> None:
    """vs0 is taken as parsed; the edit gives vs1 vs0's port: a clash with an untouched one."""
    document, config = _head()
    edited = edits.update_virtual_service(document, "vs1", {"port": 8000})
    with pytest.raises(InvalidConfiguration) as incremental:
        parse_document(edited, previous=(document, config))
    with pytest.raises(InvalidConfiguration) as whole:
        parse_document(edited)
    assert incremental.value.errors == whole.value.errors


def test_a_previous_document_that_does_not_match_its_configuration_is_not_trusted() -> None:
    document, _ = _head()
    other = parse_document(_document(services=3))  # not the one parsed from ``document``
    edited = edits.delete_virtual_service(document, "vs0")
    assert parse_document(edited, previous=(document, other)) == parse_document(edited)


def test_models_share_one_set_of_given_fields_per_combination() -> None:
    # pydantic keeps the names of the fields given in each model; a frozen model's set is
    # shared with every model of its class given the same ones (issue 15: 10,000 real servers)
    data = _document()
    data["virtual_services"][1]["real_servers"][0]["weight"] = 5
    config = parse_document(data)
    servers = [vs.real_servers[0] for vs in config.virtual_services]
    assert servers[0].model_fields_set == {"address", "port"}
    assert servers[0].model_fields_set is servers[2].model_fields_set
    assert servers[1].model_fields_set == {"address", "port", "weight"}
    copied = servers[0].model_copy(update={"weight": 7})  # pydantic copies the set first
    assert copied.model_fields_set == {"address", "port", "weight"}
    assert servers[2].model_fields_set == {"address", "port"}
    services = config.virtual_services
    assert services[0].model_fields_set is services[3].model_fields_set
    # an edit's service, parsed again, shares the sets of the services it left alone
    document, head = _head()
    edited = parse_document(
        edits.update_real_server(document, "vs1", "198.18.1.2:80", {"weight": 9}),
        previous=(document, head),
    )
    assert edited.virtual_services[0] is head.virtual_services[0]
    assert edited.virtual_services[1].real_servers[0].weight == 9
    assert (
        edited.virtual_services[1].real_servers[0].model_fields_set
        is head.virtual_services[0].real_servers[0].model_fields_set
    )
