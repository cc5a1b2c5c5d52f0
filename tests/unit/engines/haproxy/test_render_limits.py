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
