"""A service's cache and compression rendered for HAProxy: golden files
(tests/golden/haproxy/caching/), each accepted by the real ``haproxy -c`` without a warning."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.view import HaproxyGlobals, build_view
from bascule.model import parse_document

GLOBALS = HaproxyGlobals(stats_socket="/run/bascule/haproxy.sock", maxconn=4096, nbthread=2)


def document(**fields: Any) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "site",
                "address": "198.18.0.100",
                "port": 80,
                "real_servers": [{"address": "198.18.0.4", "port": 80}],
                **fields,
            }
        ]
    }


CASES: dict[str, dict[str, Any]] = {
    "cache": document(cache={"size_mb": 256, "max_object_kb": 1024, "max_age": 60}),
    "cache_x_cache_and_compression": document(
        cache={"x_cache_header": True},
        compression={"types": ["text/html", "application/json"], "algorithms": ["gzip"]},
        rules=[{"name": "old", "match": {"path": "/old"}, "action": {"redirect": "/new"}}],
    ),
    "compression_defaults": document(compression={}),
    # the sub-service's own cache in its backend; the service's leaves its requests alone
    "sub_service_cache": document(
        cache={"size_mb": 128},
        sub_services=[
            {
                "name": "static",
                "real_servers": [{"address": "198.18.0.5", "port": 80}],
                "cache": {"size_mb": 512, "max_age": 3600, "x_cache_header": True},
            },
            {"name": "api", "real_servers": [{"address": "198.18.0.6", "port": 80}]},
        ],
        rules=[
            {"name": "static", "match": {"path_prefix": "/static/"}, "action": {"use": "static"}},
            {"name": "api", "match": {"path_prefix": "/api/"}, "action": {"use": "api"}},
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(
    case: str,
    golden: Callable[[str, str], None],
    haproxy_check: Callable[..., str],
    tmp_path: Path,
) -> None:
    config = parse_document(CASES[case])
    golden(f"caching/{case}", render(build_view(config, GLOBALS)))
    # HAProxy opens the cache generations' map file (the purge) when it loads
    generations = tmp_path / "cache-generations.map"
    generations.write_text("")
    haproxy_check(
        render(build_view(config, replace(GLOBALS, cache_generations_map=str(generations))))
    )
