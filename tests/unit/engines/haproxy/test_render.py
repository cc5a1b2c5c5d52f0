"""Golden files for the model -> HAProxy config translation, each checked by ``haproxy -c``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bascule.engines.haproxy.peers import PeersListener
from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.view import HaproxyGlobals, build_view
from bascule.model import parse_document

from .conftest import GOLDEN_DIR, UPDATE_GOLDEN

GLOBALS = HaproxyGlobals(stats_socket="/run/bascule/haproxy.sock", maxconn=4096, nbthread=2)

SERVERS = [
    {"address": "198.18.0.4", "port": 80, "weight": 1000},
    {"address": "198.18.0.5", "port": 80, "weight": 3000},
    {"address": "198.18.0.6", "port": 80, "weight": 2000},
]


def service(**fields: Any) -> dict[str, Any]:
    """A virtual service document: 198.18.0.100:80 with three weighted real servers."""
    return {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "real_servers": SERVERS,
        **fields,
    }


def generic(port: int, check: dict[str, Any], **fields: Any) -> dict[str, Any]:
    servers = [{"address": "198.18.0.4", "port": port}, {"address": "198.18.0.5", "port": port}]
    return service(
        **{
            "name": f"svc-{port}",
            "port": port,
            "type": "generic",
            "check": check,
            "real_servers": servers,
            **fields,
        }
    )


@dataclass(frozen=True, kw_only=True)
class Case:
    services: list[dict[str, Any]]
    globals_: HaproxyGlobals = field(default=GLOBALS)


SCHEDULERS = [
    "round_robin",
    "weighted_round_robin",
    "least_connection",
    "weighted_least_connection",
    "fixed_weighting",
    "source_ip_hash",
    "url_hash",
]

PEERED = HaproxyGlobals(
    stats_socket="/run/bascule/haproxy.sock",
    maxconn=4096,
    nbthread=2,
    local_peer=PeersListener(address="/run/bascule/peers.sock"),
)


def persisted(method: str, **persistence: Any) -> dict[str, Any]:
    kind = {"ssl_session_id": "generic", "rdp_cookie": "remote_terminal"}.get(method, "http")
    check = {"type": "tcp"} if kind != "http" else {"type": "http"}
    return service(
        type=kind,
        check=check,
        persistence={"method": method, "timeout": 600, **persistence},
    )


PERSISTENCE_CASES: dict[str, Case] = {
    "persistence_source_ip": Case(services=[persisted("source_ip")], globals_=PEERED),
    "persistence_source_ip_mask": Case(
        services=[persisted("source_ip", source_mask=24)], globals_=PEERED
    ),
    "persistence_source_ip_ipv6": Case(
        services=[
            service(
                address="2001:db8::100",
                real_servers=[{"address": "2001:db8::4", "port": 80}],
                persistence={"method": "source_ip", "source_mask": 64},
            )
        ],
        globals_=PEERED,
    ),
    # dual-stack: both VIPs bound, one ipv6 table for both families' clients, each masked
    "persistence_source_ip_dual_stack": Case(
        services=[
            service(
                address="198.18.0.100",
                address6="2001:db8::100",
                real_servers=[
                    {"address": "198.18.0.4", "port": 80},
                    {"address": "2001:db8::4", "port": 80},
                ],
                persistence={"method": "source_ip", "source_mask": 24, "source_mask6": 64},
            )
        ],
        globals_=PEERED,
    ),
    "persistence_active_cookie": Case(
        services=[persisted("active_cookie", cookie="LB")], globals_=PEERED
    ),
    "persistence_active_cookie_fallback": Case(
        services=[persisted("active_cookie", fallback="source_ip")], globals_=PEERED
    ),
    "persistence_server_cookie": Case(
        services=[persisted("server_cookie", cookie="JSESSIONID", fallback="source_ip")],
        globals_=PEERED,
    ),
    "persistence_super_http": Case(services=[persisted("super_http")], globals_=PEERED),
    "persistence_hash_all_cookies": Case(services=[persisted("hash_all_cookies")], globals_=PEERED),
    "persistence_url_hash": Case(services=[persisted("url_hash")], globals_=PEERED),
    "persistence_host_header": Case(services=[persisted("host_header")], globals_=PEERED),
    "persistence_query_item": Case(
        services=[persisted("query_item", query_item="sid", fallback="source_ip")],
        globals_=PEERED,
    ),
    "persistence_selected_header": Case(
        services=[persisted("selected_header", header="X-Tenant#1")], globals_=PEERED
    ),
    "persistence_ssl_session_id": Case(
        services=[persisted("ssl_session_id", fallback="source_ip")], globals_=PEERED
    ),
    "persistence_rdp_cookie": Case(services=[persisted("rdp_cookie")], globals_=PEERED),
    "persistence_without_peers": Case(services=[persisted("source_ip")]),
}

CASES: dict[str, Case] = {
    **{
        f"scheduler_{name}": Case(services=[service(scheduler=name, check={"type": "tcp"})])
        for name in SCHEDULERS
    },
    "check_none": Case(services=[service(check={"type": "none"})]),
    "check_tcp": Case(services=[service(check={"type": "tcp", "port": 8081})]),
    "check_http_defaults": Case(services=[service()]),
    "check_http_every_option": Case(
        services=[
            service(
                check={
                    "type": "http",
                    "interval": 5,
                    "timeout": 2,
                    "rise": 3,
                    "fall": 4,
                    "port": 8080,
                    "method": "POST",
                    "path": "/health?full=1",
                    "host": "www.example.com",
                    "headers": {"X-Api-Key": "s3cr3t", "User-Agent": "Bascule check"},
                    "post_data": '{"probe": true}',
                    "expect_status": "200-299,301,418",
                    "expect_body": '"status": ?"ok"',
                }
            )
        ]
    ),
    "check_https": Case(
        services=[
            service(
                port=443,
                check={"type": "https", "path": "/status", "host": "www.example.com:8443"},
                real_servers=[{"address": "198.18.0.4", "port": 443}],
            )
        ]
    ),
    "check_https_vip_host": Case(services=[service(port=8443, check={"type": "https"})]),
    "check_smtp": Case(services=[generic(25, {"type": "smtp"})]),
    "check_ftp": Case(services=[generic(21, {"type": "ftp"})]),
    "check_pop3": Case(services=[generic(110, {"type": "pop3"})]),
    "check_imap": Case(services=[generic(143, {"type": "imap"})]),
    "check_ldap": Case(services=[generic(389, {"type": "ldap"})]),
    "check_binary": Case(
        services=[
            generic(
                6379, {"type": "binary", "send_hex": "50494e470d0a", "expect_hex": "2b504f4e47"}
            )
        ]
    ),
    "check_binary_expect_only": Case(
        services=[generic(3306, {"type": "binary", "expect_hex": "0a"})]
    ),
    "server_drain": Case(
        services=[
            service(
                scheduler="weighted_round_robin",
                real_servers=[{**SERVERS[0], "state": "drain"}, *SERVERS[1:]],
            )
        ]
    ),
    "server_disabled": Case(
        services=[
            service(
                scheduler="weighted_round_robin",
                real_servers=[{**SERVERS[0], "state": "disabled"}, *SERVERS[1:]],
            )
        ]
    ),
    "server_max_connections": Case(
        services=[service(real_servers=[{**SERVERS[0], "max_connections": 500}, *SERVERS[1:]])]
    ),
    "server_critical_http": Case(
        services=[service(real_servers=[{**SERVERS[0], "critical": True}, *SERVERS[1:]])]
    ),
    "server_critical_tcp": Case(
        services=[
            generic(
                5432,
                {"type": "tcp"},
                real_servers=[
                    {"address": "198.18.0.4", "port": 5432, "critical": True},
                    {"address": "198.18.0.5", "port": 5432, "critical": True},
                ],
            )
        ]
    ),
    "fixed_weighting_states": Case(
        services=[
            service(
                scheduler="fixed_weighting",
                real_servers=[
                    {"address": "198.18.0.4", "port": 80, "weight": 3000, "state": "drain"},
                    {"address": "198.18.0.5", "port": 80, "weight": 5000, "state": "disabled"},
                    {"address": "198.18.0.6", "port": 80, "weight": 5000},
                    {"address": "198.18.0.7", "port": 80, "weight": 1},
                ],
            )
        ]
    ),
    "extra_port_ranges": Case(services=[service(extra_ports=[8080, "9000-9010", 8443])]),
    "ipv6": Case(
        services=[
            service(
                address="2001:db8::100",
                real_servers=[
                    {"address": "2001:db8::4", "port": 80, "critical": True},
                    {"address": "198.18.0.5", "port": 8080},
                ],
                extra_ports=["8000-8009"],
            )
        ]
    ),
    "ipv6_wildcard": Case(
        services=[service(address="::"), service(name="web4", address="0.0.0.0")]
    ),
    "vs_disabled": Case(services=[service(enabled=False)]),
    "type_generic": Case(services=[generic(3389, {"type": "tcp"}, scheduler="least_connection")]),
    "no_real_servers": Case(services=[service(real_servers=[])]),
    "no_virtual_services": Case(services=[]),
    "two_services": Case(
        services=[service(), generic(25, {"type": "smtp"}, scheduler="source_ip_hash")]
    ),
    **PERSISTENCE_CASES,
    "cpu_map": Case(
        services=[service(check={"type": "tcp"})],
        globals_=HaproxyGlobals(
            stats_socket="/run/bascule/haproxy.sock", maxconn=4096, nbthread=2, cpus=(0, 1)
        ),
    ),
    "server_state_file": Case(
        services=[service(check={"type": "tcp"})],
        globals_=HaproxyGlobals(
            stats_socket="/run/bascule/haproxy.sock",
            maxconn=20000,
            nbthread=4,
            hard_stop_after_s=120,
            server_state_file="/var/lib/bascule/haproxy.state",
        ),
    ),
}


def rendered(case: str) -> str:
    spec = CASES[case]
    config = parse_document({"virtual_services": spec.services})
    return render(build_view(config, spec.globals_))


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, golden: Callable[[str, str], None]) -> None:
    golden(case, rendered(case))


@pytest.mark.parametrize("case", sorted(CASES))
def test_haproxy_accepts(case: str, haproxy_check: Callable[..., str]) -> None:
    # The state file exists only once an appliance has saved one before a reload.
    output = haproxy_check(rendered(case), allow=("Can't open global server state file",))
    assert "Configuration file is valid" in output


@pytest.mark.skipif(UPDATE_GOLDEN, reason="golden files are being rewritten")
def test_no_stale_golden_files() -> None:
    on_disk = {path.stem for path in GOLDEN_DIR.glob("*.cfg")}
    assert on_disk == set(CASES)


def test_every_supported_scheduler_and_check_has_a_golden_case() -> None:
    from bascule.model import CheckType, Mode

    assert {f"scheduler_{name}" for name in SCHEDULERS} <= set(CASES)
    checks = {c.value for c in CheckType if Mode.l7 in c.modes}
    assert all(any(case.startswith(f"check_{c}") for case in CASES) for c in checks)


def test_render_is_deterministic_and_ends_with_a_newline() -> None:
    text = rendered("two_services")
    assert text == rendered("two_services")
    assert text.endswith("\n")
    assert not text.endswith("\n\n")
    assert "\t" not in text
