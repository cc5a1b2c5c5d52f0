"""persistence.py: the HAProxy decisions of each persistence method, as values."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.engines.haproxy.peers import PeersListener
from bascule.engines.haproxy.persistence import (
    PERSISTENCE,
    PersistenceView,
    persistence_view,
    server_cookie_value,
    table_names,
)
from bascule.engines.haproxy.view import HaproxyGlobals, build_view
from bascule.errors import InvalidConfiguration
from bascule.model import Mode, PersistenceMethod, parse_document

SERVERS = [{"address": "198.18.0.4", "port": 80}, {"address": "198.18.0.5", "port": 80}]


def vs(kind: str = "http", address: str = "198.18.0.100", **persistence: Any) -> Any:
    document = {
        "virtual_services": [
            {
                "name": "web",
                "address": address,
                "port": 80,
                "type": kind,
                "check": {"type": "tcp"},
                "real_servers": SERVERS,
                "persistence": persistence,
            }
        ]
    }
    return parse_document(document).virtual_services[0]


def test_every_persistence_method_of_l7_is_translated() -> None:
    assert set(PERSISTENCE) == {method for method in PersistenceMethod if Mode.l7 in method.modes}


@pytest.mark.parametrize("method", list(PersistenceMethod))
def test_every_method_but_the_cookie_keeps_a_stick_table(method: PersistenceMethod) -> None:
    service = vs(kind=(method.needs_type or "http"), method=method.value)
    without = {PersistenceMethod.none, PersistenceMethod.active_cookie}
    assert table_names(service) == (() if method in without else ("web",))


def test_none_adds_nothing() -> None:
    assert persistence_view(vs(), "bascule") == PersistenceView()
    assert table_names(vs()) == ()


def test_source_ip_masks_the_client_address() -> None:
    assert persistence_view(vs(method="source_ip", source_mask=24, timeout=120), None).lines == (
        "stick-table type ip size 1m expire 120s",
        "stick on src,ipmask(24)",
    )
    # IPv6 services mask with the second argument (source_mask6)
    ipv6 = persistence_view(vs(address="2001:db8::1", method="source_ip", source_mask6=64), None)
    assert ipv6.lines[1] == "stick on src,ipmask(32,64)"


def test_active_cookie_names_servers_and_keeps_no_table() -> None:
    view = persistence_view(vs(method="active_cookie", cookie="LB", timeout=300), "bascule")
    assert view.lines == ("cookie LB insert indirect nocache maxidle 300s",)
    assert view.server_cookies is not None
    assert len(set(view.server_cookies.values())) == 2
    assert table_names(vs(method="active_cookie")) == ()
    assert server_cookie_value(vs().real_servers[0]) not in "198.18.0.4:80"


def test_server_cookie_learns_from_responses() -> None:
    lines = persistence_view(vs(method="server_cookie", cookie="JSESSIONID"), None).lines
    assert "stick store-response res.cook(JSESSIONID)" in lines
    assert "stick match req.cook(JSESSIONID)" in lines


def test_fallback_adds_a_source_table_used_only_without_the_key() -> None:
    service = vs(method="query_item", query_item="sid", fallback="source_ip")
    view = persistence_view(service, "bascule")
    assert view.fallback_table == "web.src"
    assert view.fallback_lines == ("stick-table type ip size 1m expire 3600s peers bascule",)
    assert view.lines[-1] == "stick on src table web.src if !{ urlp(sid) -m found }"
    assert table_names(service) == ("web", "web.src")


def test_user_names_with_config_syntax_are_quoted_as_one_word() -> None:
    view = persistence_view(vs(method="selected_header", header="X-Tenant#1"), None)
    assert view.lines[-1] == (
        "stick on 'req.fhdr(X-Tenant#1)' if { 'req.fhdr(X-Tenant#1)' -m found }"
    )
    # a quote cannot be a sample fetch argument: the model refuses it (test_render_property)
    with pytest.raises(InvalidConfiguration, match="single quote"):
        persistence_view(vs(method="selected_header", header="it's"), None)


def test_peers_section_only_with_a_table_and_a_local_peer() -> None:
    peered = HaproxyGlobals(
        stats_socket="/s", maxconn=10, nbthread=1, local_peer=PeersListener(address="/p.sock")
    )
    config = parse_document({"virtual_services": []})
    assert build_view(config, peered).peers == ()
    document = {
        "virtual_services": [
            {
                "name": "web",
                "address": "198.18.0.100",
                "port": 80,
                "real_servers": SERVERS,
                "persistence": {"method": "source_ip"},
            }
        ]
    }
    view = build_view(parse_document(document), peered)
    assert view.peers == ("bind 'unix@/p.sock' mode 600", "server bascule")
    assert "localpeer bascule" in view.global_settings
    unpeered = build_view(
        parse_document(document), HaproxyGlobals(stats_socket="/s", maxconn=10, nbthread=1)
    )
    assert unpeered.peers == ()
    assert "peers" not in unpeered.proxies[0].persistence[0]
