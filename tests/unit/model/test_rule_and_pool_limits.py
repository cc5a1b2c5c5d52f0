"""Limits of content rules and sub-services, and sub-services' caches (model/limits.py,
model/caching.py): what they count, what they refuse with a field path, what they answer."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.errors import InvalidConfiguration
from bascule.model import Mode, parse_document
from bascule.model.caching import MAX_CACHES_MB
from bascule.model.document import for_mode

LISTS = {"office": {"addresses": ["198.18.0.0/24"]}, "other": {"addresses": ["198.18.1.0/24"]}}


def site(**fields: Any) -> dict[str, Any]:
    return {
        "name": "site",
        "address": "198.18.0.100",
        "port": 80,
        "real_servers": [{"address": "198.18.0.4", "port": 80}],
        "sub_services": [{"name": "api", "real_servers": [{"address": "198.18.0.5", "port": 80}]}],
        **fields,
    }


def rule(name: str = "login", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"path": "/login", "method": "POST"},
        "action": {"use_default": True},
        **fields,
    }


def with_sub(**fields: Any) -> dict[str, Any]:
    return {"name": "api", "real_servers": [{"address": "198.18.0.5", "port": 80}], **fields}


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(data)
    return {e.path: e.message for e in caught.value.errors}


def test_a_rule_and_a_sub_service_count_requests_per_client() -> None:
    config = parse_document(
        {
            "access_lists": LISTS,
            "virtual_services": [
                site(
                    limits={"response": {"code": 503, "retry_after": 4}},
                    rules=[
                        rule(limits={"per_client": {"requests_per_second": 5}}),
                        rule(
                            "api",
                            match={"path_prefix": "/api"},
                            action={"use": "api"},
                            limits={
                                "per_client": {"requests_per_second": 9},
                                "response": {"code": 429},
                                "exempt": ["office"],
                            },
                        ),
                    ],
                    sub_services=[
                        with_sub(
                            limits={"per_client": {"requests_per_second": 7}, "exempt": ["other"]},
                            cache={"size_mb": 32},
                        )
                    ],
                )
            ],
        }
    )
    vs = config.virtual_services[0]
    login, api = (r.limits for r in vs.rules)
    assert login is not None and api is not None
    # without a response of its own, a rule answers as its service; with one, its own
    assert (login.answer(vs.limits).code, login.answer(vs.limits).retry_after) == (503, 4)
    assert (api.answer(vs.limits).code, api.answer(vs.limits).retry_after) == (429, None)
    pool = vs.pools[1]
    assert pool.limits == vs.sub_services[0].limits and pool.cache == vs.sub_services[0].cache
    # HAProxy's share carries every exempt list its services' rules and pools name
    assert sorted(for_mode(config, Mode.l7).access_lists) == ["office", "other"]


@pytest.mark.parametrize("where", ["rules[0]", "sub_services[0]"])
def test_connection_limits_and_missing_rates_are_refused_where_given(where: str) -> None:
    bad = {
        "max_connections": 10,
        "connections_per_second": 5,
        "per_client": {"connections": 3, "connections_per_second": 2},
        "exempt": ["nope"],
    }
    service = (
        site(rules=[rule(limits=bad)])
        if where.startswith("rules")
        else site(sub_services=[with_sub(limits=bad)])
    )
    found = problems({"access_lists": LISTS, "virtual_services": [service]})
    path = f"virtual_services[0].{where}.limits"
    assert found[f"{path}.exempt[0]"] == "'nope' is not in access_lists (office, other)"
    for field in (
        "max_connections",
        "connections_per_second",
        "per_client.connections",
        "per_client.connections_per_second",
    ):
        assert found[f"{path}.{field}"].startswith(
            "not here: a rule's or sub-service's limits count HTTP requests"
        ), field
    assert found[f"{path}.per_client.requests_per_second"] == (
        "is what a rule's or sub-service's limits count: give it (1..10000000)"
    )


@pytest.mark.parametrize("rate", [0, -1, True, "many"])
def test_a_rate_of_zero_negative_or_not_a_number_is_refused(rate: Any) -> None:
    found = problems(
        {
            "virtual_services": [
                site(
                    rules=[rule(limits={"per_client": {"requests_per_second": rate}})],
                    sub_services=[with_sub(limits={"per_client": {"requests_per_second": rate}})],
                )
            ]
        }
    )
    assert set(found) == {
        "virtual_services[0].rules[0].limits.per_client.requests_per_second",
        "virtual_services[0].sub_services[0].limits.per_client.requests_per_second",
    }


def test_a_rules_answer_and_unknown_fields_name_their_path() -> None:
    found = problems(
        {
            "virtual_services": [
                site(
                    rules=[
                        rule(
                            limits={
                                "per_client": {"requests_per_second": 5, "bandwidth": 10},
                                "response": {"code": 418, "retry_after": 0},
                                "burst": 3,
                            }
                        )
                    ]
                )
            ]
        }
    )
    where = "virtual_services[0].rules[0].limits"
    assert set(found) == {
        f"{where}.per_client.bandwidth",
        f"{where}.response.code",
        f"{where}.response.retry_after",
        f"{where}.burst",
    }


def test_sub_service_caches_count_in_the_memory_of_all_caches() -> None:
    found = problems(
        {
            "virtual_services": [
                site(
                    cache={"size_mb": 2000},
                    sub_services=[
                        with_sub(cache={"size_mb": 2000}),
                        with_sub(name="big", cache={"size_mb": 100}),
                    ],
                )
            ]
        }
    )
    assert found == {
        "virtual_services[0].sub_services[1].cache.size_mb": (
            f"the caches would take 4100 MB in all; HAProxy maps every cache's whole size when "
            f"it starts, and at most {MAX_CACHES_MB} MB may be given to caches"
        ),
    }
    bad = problems({"virtual_services": [site(sub_services=[with_sub(cache={"size_mb": 0})])]})
    where = "virtual_services[0].sub_services[0].cache.size_mb"
    assert bad == {where: "must be between 1 and 4095"}


def test_limits_and_a_cache_of_a_sub_service_need_an_http_service() -> None:
    found = problems(
        {
            "virtual_services": [
                site(
                    type="generic",
                    rules=[rule(limits={"per_client": {"requests_per_second": 5}})],
                    sub_services=[with_sub(cache={})],
                )
            ]
        }
    )
    assert set(found) == {"virtual_services[0].sub_services", "virtual_services[0].rules"}
