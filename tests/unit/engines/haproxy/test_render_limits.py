"""A service's limits rendered for HAProxy: golden files (tests/golden/haproxy/limits/), each
accepted by the real ``haproxy -c`` without a warning; exempt lists never spill into other
lines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bascule.engines.haproxy.limits import ACL_CHUNK
from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.view import HaproxyGlobals, build_view
from bascule.model import parse_document

GLOBALS = HaproxyGlobals(stats_socket="/run/bascule/haproxy.sock", maxconn=4096, nbthread=2)
PER_CLIENT = {"connections": 50, "connections_per_second": 20, "requests_per_second": 50}


def document(service: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "site",
                "address": "198.18.0.100",
                "port": 80,
                "real_servers": [{"address": "198.18.0.4", "port": 80}],
                **service,
            }
        ],
        **top,
    }


CASES: dict[str, dict[str, Any]] = {
    "per_service": document({"limits": {"max_connections": 10000, "connections_per_second": 500}}),
    "per_client_http": document(
        {"limits": {"per_client": PER_CLIENT, "response": {"code": 429, "retry_after": 10}}}
    ),
    "per_client_503_exempt": document(
        {
            "limits": {
                "per_client": {"requests_per_second": 5},
                "response": {"code": 503},
                "exempt": ["office"],
            },
            "persistence": {"method": "source_ip"},
        },
        access_lists={"office": {"addresses": ["198.18.0.0/24", "2001:2::/48", "198.18.9.9"]}},
    ),
    "rule_login": document(
        {
            "limits": {"per_client": {"requests_per_second": 50}},
            "rules": [
                {
                    "name": "login",
                    "match": {"path": "/login", "method": "POST"},
                    "action": {"use_default": True},
                    "limits": {
                        "per_client": {"requests_per_second": 5},
                        "response": {"code": 429, "retry_after": 10},
                        "exempt": ["office"],
                    },
                },
                {
                    "name": "search",
                    "match": {"path_prefix": "/search"},
                    "action": {"use_default": True},
                    # no response of its own: the service's (429 without Retry-After)
                    "limits": {"per_client": {"requests_per_second": 20}},
                },
            ],
        },
        access_lists={"office": {"addresses": ["198.18.0.0/24"]}},
    ),
    "sub_service": document(
        {
            "limits": {"response": {"code": 503, "retry_after": 3}},
            "sub_services": [
                {
                    "name": "api",
                    "real_servers": [{"address": "198.18.0.5", "port": 80}],
                    "persistence": {"method": "source_ip"},
                    "limits": {"per_client": {"requests_per_second": 30}, "exempt": ["office"]},
                }
            ],
            "rules": [
                {
                    "name": "api",
                    "match": {"path_prefix": "/api/"},
                    "action": {"use": "api"},
                    "limits": {"per_client": {"requests_per_second": 10}},
                }
            ],
        },
        access_lists={"office": {"addresses": ["198.18.0.0/24", "2001:2::/48"]}},
    ),
    "per_client_tcp": document(
        {
            "type": "generic",
            "limits": {"per_client": {"connections": 5, "connections_per_second": 10}},
        }
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(
    case: str, golden: Callable[[str, str], None], haproxy_check: Callable[..., str]
) -> None:
    text = render(build_view(parse_document(CASES[case]), GLOBALS))
    golden(f"limits/{case}", text)
    haproxy_check(text)


def test_a_long_exempt_list_is_split_over_acl_lines() -> None:
    entries = [f"198.18.{i // 256}.{i % 256}" for i in range(ACL_CHUNK * 2 + 1)]
    data = document(
        {"limits": {"per_client": {"connections": 5}, "exempt": ["many"]}},
        access_lists={"many": {"addresses": entries}},
    )
    text = render(build_view(parse_document(data), GLOBALS))
    acls = [line for line in text.splitlines() if "acl bascule_limits_exempt src" in line]
    assert len(acls) == 3
    assert sum(len(line.split()) - 3 for line in acls) == len(entries)


COUNTERS = "conn_cur={} conn_rate(1000)={} http_req_rate(1000)={}"
SHOW_TABLE = "\n".join(
    [
        "# table: site_limits, type: ipv6, size:1048576, used:3",
        "0x55d1c1a8e2a0: key=::ffff:198.18.0.12 use=8 exp=29998 " + COUNTERS.format(8, 8, 1532),
        "0x55d1c1a8e2b0: key=::ffff:198.18.0.10 use=1 exp=29000 " + COUNTERS.format(1, 1, 5),
        "0x55d1c1a8e2c0: key=2001:2::10 use=0 exp=1000 " + COUNTERS.format(0, 0, 0),
    ]
)


def test_client_loads_busiest_first_and_who_is_limited() -> None:
    from bascule.engines.haproxy.limits import client_loads
    from bascule.engines.haproxy.runtime import parse_show_table

    vs = parse_document(CASES["per_client_http"]).virtual_services[0]
    loads = client_loads(vs.limits, parse_show_table(SHOW_TABLE), top=2)
    assert [(load.client, load.requests_per_second, load.limited) for load in loads] == [
        ("198.18.0.12", 1532, True),
        ("198.18.0.10", 5, False),
    ]


def test_the_tables_of_a_rule_and_a_sub_service_and_their_clients() -> None:
    from bascule.engines.haproxy.limits import client_loads, rule_table_name, table_name
    from bascule.engines.haproxy.runtime import parse_show_table

    vs = parse_document(CASES["sub_service"]).virtual_services[0]
    pool = vs.pools[1]
    assert (table_name(vs), table_name(pool)) == ("site_limits", "site_api_limits")
    assert rule_table_name(vs, "api") == "site.rules.api"
    shown = "\n".join(
        [
            "# table: site_api_limits, type: ipv6, size:1048576, used:2",
            "0x1: key=::ffff:198.18.0.12 use=0 exp=29998 http_req_rate(1000)=44",
            "0x2: key=::ffff:198.18.0.10 use=0 exp=29000 http_req_rate(1000)=3",
        ]
    )
    loads = client_loads(pool.limits, parse_show_table(shown), top=5)
    assert [(load.client, load.requests_per_second, load.limited) for load in loads] == [
        ("198.18.0.12", 44, True),
        ("198.18.0.10", 3, False),
    ]
