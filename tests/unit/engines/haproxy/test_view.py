"""The model -> HAProxy view decisions, compared as values."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.engines.haproxy.balancing import BALANCE
from bascule.engines.haproxy.checks import CHECKS, HealthCheckView
from bascule.engines.haproxy.quoting import quote, quote_log_format
from bascule.engines.haproxy.servers import MAX_WEIGHT, ServerView, server_name
from bascule.engines.haproxy.view import HaproxyGlobals, ProxyView, build_view, proxy_name
from bascule.model import CheckType, Mode, RealServer, Scheduler, parse_document

GLOBALS = HaproxyGlobals(stats_socket="/run/bascule/haproxy.sock", maxconn=4096, nbthread=2)


def proxy(**fields: Any) -> ProxyView:
    document = {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "check": {"type": "tcp"},
        **fields,
    }
    view = build_view(parse_document({"virtual_services": [document]}), GLOBALS)
    (only,) = view.proxies
    return only


def servers(*weights: int, **rs_fields: Any) -> list[dict[str, Any]]:
    return [
        {"address": f"198.18.0.{index + 4}", "port": 80, "weight": weight, **rs_fields}
        for index, weight in enumerate(weights)
    ]


def weights(view: ProxyView) -> list[int]:
    return [server.weight for server in view.servers]


# --------------------------------------------------------------------------- weights


def test_weights_keep_their_ratio() -> None:
    view = proxy(scheduler="weighted_round_robin", real_servers=servers(3000, 1000))
    assert weights(view) == [3, 1]


def test_weights_above_the_haproxy_range_are_scaled_to_it() -> None:
    view = proxy(scheduler="weighted_least_connection", real_servers=servers(65535, 1, 32768))
    assert weights(view) == [MAX_WEIGHT, 1, 128]


@pytest.mark.parametrize("scheduler", ["round_robin", "least_connection"])
def test_unweighted_schedulers_give_every_server_weight_1(scheduler: str) -> None:
    view = proxy(scheduler=scheduler, real_servers=servers(3000, 1000, 7))
    assert weights(view) == [1, 1, 1]


def test_drain_is_weight_0_and_leaves_the_others_alone() -> None:
    rs = servers(3000, 1000)
    rs[0]["state"] = "drain"
    view = proxy(scheduler="weighted_round_robin", real_servers=rs)
    assert weights(view) == [0, 1]
    assert [s.disabled for s in view.servers] == [False, False]


def test_disabled_keeps_its_weight_for_when_it_is_enabled_again() -> None:
    rs = servers(3000, 1000)
    rs[0]["state"] = "disabled"
    view = proxy(scheduler="weighted_round_robin", real_servers=rs)
    assert view.servers[0] == ServerView(
        name="198.18.0.4:80",
        address="198.18.0.4:80",
        weight=3,
        disabled=True,
        check_keywords=("check", "inter", "2s", "rise", "2", "fall", "3"),
    )


def test_max_connections() -> None:
    rs = servers(1, 1)
    rs[0]["max_connections"] = 500
    assert [s.maxconn for s in proxy(real_servers=rs).servers] == [500, None]


# --------------------------------------------------------------------------- schedulers


def test_every_scheduler_of_l7_has_a_balance_algorithm() -> None:
    assert set(BALANCE) == {scheduler for scheduler in Scheduler if Mode.l7 in scheduler.modes}


def test_every_check_type_of_l7_has_its_directives() -> None:
    allowed = {kind for kind in CheckType if Mode.l7 in kind.modes}
    assert set(CHECKS) == allowed - {CheckType.none}  # none is no check at all


@pytest.mark.parametrize(
    ("scheduler", "balance", "hash_type"),
    [
        ("round_robin", "roundrobin", None),
        ("weighted_round_robin", "roundrobin", None),
        ("least_connection", "leastconn", None),
        ("weighted_least_connection", "leastconn", None),
        ("fixed_weighting", "roundrobin", None),
        ("source_ip_hash", "source", "consistent"),
        ("url_hash", "uri", "consistent"),
    ],
)
def test_balance(scheduler: str, balance: str, hash_type: str | None) -> None:
    view = proxy(scheduler=scheduler, real_servers=servers(1))
    assert (view.balance, view.hash_type) == (balance, hash_type)
    assert BALANCE[Scheduler(scheduler)].hash_type == hash_type


def test_fixed_weighting_one_active_then_backups_by_descending_weight() -> None:
    view = proxy(scheduler="fixed_weighting", real_servers=servers(1000, 3000, 2000, 3000))
    assert [(s.name, s.backup) for s in view.servers] == [
        ("198.18.0.5:80", False),  # highest, first in document order among the 3000s
        ("198.18.0.7:80", True),
        ("198.18.0.6:80", True),
        ("198.18.0.4:80", True),
    ]
    assert "option allbackups" not in view.directives
    assert view.balance == "roundrobin"


def test_fixed_weighting_orders_by_model_weight_even_when_scaled_weights_tie() -> None:
    view = proxy(scheduler="fixed_weighting", real_servers=servers(65534, 65535))
    assert [(s.name, s.weight) for s in view.servers] == [
        ("198.18.0.5:80", MAX_WEIGHT),
        ("198.18.0.4:80", MAX_WEIGHT),
    ]


def test_fixed_weighting_order_does_not_depend_on_states() -> None:
    plain = proxy(scheduler="fixed_weighting", real_servers=servers(1000, 3000))
    rs = servers(1000, 3000)
    rs[1]["state"] = "disabled"
    with_states = proxy(scheduler="fixed_weighting", real_servers=rs)
    assert [s.name for s in plain.servers] == [s.name for s in with_states.servers]


@pytest.mark.parametrize("scheduler", ["adaptive", "weighted_response_time"])
def test_dynamic_schedulers_run_as_roundrobin_with_runtime_weights(scheduler: str) -> None:
    # The daemon sets their weights at runtime; the config starts from the document's.
    view = proxy(scheduler=scheduler, real_servers=servers(1000, 3000))
    assert view.balance == "roundrobin"
    assert [s.weight for s in view.servers] == [1, 3]


# --------------------------------------------------------------------------- the section


def test_http_service() -> None:
    view = proxy(type="http", real_servers=servers(1))
    assert view.mode == "http"
    assert view.settings == ("mode http",)
    assert "option forwardfor" in view.options
    assert "http-reuse safe" in view.options
    assert "option idle-close-on-response" in view.options
    assert "retry-on conn-failure empty-response response-timeout" in view.options
    assert view.rules == (
        "http-request disable-l7-retry unless "
        "METH_GET || METH_OPTIONS || METH_PUT || METH_DELETE || METH_TRACE",
    )


def test_generic_service_is_plain_tcp() -> None:
    view = proxy(type="generic", real_servers=servers(1))
    assert view.mode == "tcp"
    assert view.options == ()
    assert view.rules == ()


def test_disabled_service() -> None:
    assert proxy(enabled=False).settings == ("disabled", "mode http")


def test_binds_for_every_port_and_range() -> None:
    view = proxy(extra_ports=[8080, "9000-9010"])
    assert view.binds == ("198.18.0.100:80", "198.18.0.100:8080", "198.18.0.100:9000-9010")


def test_ipv6_binds_and_servers() -> None:
    view = proxy(address="2001:db8::100", real_servers=[{"address": "2001:db8::4", "port": 80}])
    assert view.binds == ("[2001:db8::100]:80",)
    assert (view.servers[0].name, view.servers[0].address) == (
        "2001:db8::4:80",
        "[2001:db8::4]:80",
    )
    assert proxy(address="::").binds == ("[::]:80 v6only",)


def test_critical_servers() -> None:
    rs = servers(1, 1, 1)
    rs[0]["critical"] = True
    rs[2]["critical"] = True
    http = proxy(type="http", real_servers=rs)
    assert http.rules[:2] == (
        "http-request return status 503 if !{ srv_is_up(web/198.18.0.4:80) }",
        "http-request return status 503 if !{ srv_is_up(web/198.18.0.6:80) }",
    )
    tcp = proxy(type="generic", real_servers=rs)
    assert tcp.rules == (
        "tcp-request content reject if !{ srv_is_up(web/198.18.0.4:80) }",
        "tcp-request content reject if !{ srv_is_up(web/198.18.0.6:80) }",
    )


# --------------------------------------------------------------------------- health checks


def test_no_check() -> None:
    view = proxy(check={"type": "none"}, real_servers=servers(1))
    assert view.check == HealthCheckView()
    assert view.servers[0].check_keywords == ()


def test_tcp_check_with_port() -> None:
    view = proxy(check={"type": "tcp", "port": 8081, "interval": 10, "timeout": 3})
    assert view.check == HealthCheckView(
        directives=("timeout check 3s",),
        server_keywords=("check", "inter", "10s", "rise", "2", "fall", "3", "port", "8081"),
    )


def test_http_check() -> None:
    view = proxy(
        check={
            "type": "http",
            "method": "HEAD",
            "path": "/ping",
            "headers": {"X-Probe": "1"},
            "expect_status": "200, 204-206",
            "expect_body": "ok",
        }
    )
    assert view.check.directives == (
        "timeout check 1s",
        "option httpchk",
        "http-check send meth HEAD uri '/ping' ver HTTP/1.1 hdr Host '198.18.0.100' "
        "hdr 'X-Probe' '1'",
        "http-check expect status 200,204-206",
        "http-check expect rstring 'ok'",
    )


def test_http_check_host_defaults_to_the_vip_with_its_port() -> None:
    view = proxy(port=8080, check={"type": "http"})
    assert "hdr Host '198.18.0.100:8080'" in view.check.directives[2]
    view = proxy(address="2001:db8::100", check={"type": "http"})
    assert "hdr Host '[2001:db8::100]'" in view.check.directives[2]


@pytest.mark.parametrize(
    ("host", "sni"),
    [
        ("www.example.com", ("check-sni", "'www.example.com'")),
        ("www.example.com.:8443", ("check-sni", "'www.example.com'")),
        ("198.18.0.100", ()),
        (None, ()),
    ],
)
def test_https_check(host: str | None, sni: tuple[str, ...]) -> None:
    check: dict[str, Any] = {"type": "https"} if host is None else {"type": "https", "host": host}
    view = proxy(port=443, check=check)
    assert view.check.server_keywords[7:] == ("check-ssl", "verify", "none", *sni)


@pytest.mark.parametrize(
    ("check", "directives"),
    [
        ({"type": "smtp"}, ("option smtpchk",)),
        ({"type": "ldap"}, ("option ldap-check",)),
        ({"type": "ftp"}, ("option tcp-check", "tcp-check expect rstring '^220'")),
        ({"type": "pop3"}, ("option tcp-check", "tcp-check expect rstring '^\\+OK'")),
        ({"type": "imap"}, ("option tcp-check", "tcp-check expect rstring '^\\* OK'")),
        (
            {"type": "binary", "send_hex": "0A0b", "expect_hex": "ff"},
            ("option tcp-check", "tcp-check send-binary 0a0b", "tcp-check expect binary ff"),
        ),
        ({"type": "binary", "send_hex": "0a"}, ("option tcp-check", "tcp-check send-binary 0a")),
    ],
)
def test_protocol_checks(check: dict[str, Any], directives: tuple[str, ...]) -> None:
    view = proxy(type="generic", check=check)
    assert view.check.directives == ("timeout check 1s", *directives)


# --------------------------------------------------------------------------- names, quoting


def test_names() -> None:
    assert server_name(RealServer(address="198.18.0.4", port=80)) == "198.18.0.4:80"
    assert server_name(RealServer(address="2001:db8::4", port=443)) == "2001:db8::4:443"
    config = parse_document(
        {"virtual_services": [{"name": "web-1", "address": "198.18.0.100", "port": 80}]}
    )
    assert proxy_name(config.virtual_services[0]) == "web-1"


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("/", "'/'"),
        ('a b#c$d"e\\f', "'a b#c$d\"e\\f'"),
        ("it's", "'it'\\''s'"),
        ("'", "''\\'''"),
        ("", "''"),
    ],
)
def test_quote(text: str, quoted: str) -> None:
    assert quote(text) == quoted


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "\x7f", "tab\there"])
def test_quote_refuses_control_characters(bad: str) -> None:
    with pytest.raises(ValueError, match="control characters"):
        quote(bad)


def test_quote_log_format_doubles_percent() -> None:
    assert quote_log_format("100% %[src] %%") == "'100%% %%[src] %%%%'"


def test_globals() -> None:
    view = build_view(parse_document({}), GLOBALS)
    assert view.proxies == ()
    assert view.global_settings[:4] == (
        "stats socket '/run/bascule/haproxy.sock' mode 600 level admin expose-fd listeners",
        "maxconn 4096",
        "nbthread 2",
        "hard-stop-after 30s",
    )
    assert "timeout connect 5s" in view.defaults
    assert "retries 3" in view.defaults
    assert "option redispatch 1" in view.defaults
    with pytest.raises(ValueError, match="nbthread"):
        HaproxyGlobals(stats_socket="/s", maxconn=1, nbthread=0)


def cpu_maps(**fields: Any) -> list[str]:
    globals_ = HaproxyGlobals(stats_socket="/s", maxconn=100, **fields)
    lines = build_view(parse_document({}), globals_).global_settings
    return [line for line in lines if line.startswith("cpu-map")]


def test_threads_are_bound_one_per_cpu() -> None:
    assert cpu_maps(nbthread=2, cpus=(0, 1)) == ["cpu-map auto:1/1-2 0 1"]
    assert cpu_maps(nbthread=3, cpus=(2, 5, 7)) == ["cpu-map auto:1/1-3 2 5 7"]
    # one thread keeps the process's affinity; no CPUs given, no binding; 2.6 names 0..63
    assert cpu_maps(nbthread=1, cpus=(3,)) == []
    assert cpu_maps(nbthread=2) == []
    assert cpu_maps(nbthread=2, cpus=(63, 64)) == []
    with pytest.raises(ValueError, match="one CPU per thread"):
        HaproxyGlobals(stats_socket="/s", maxconn=1, nbthread=2, cpus=(0,))
    with pytest.raises(ValueError, match="distinct"):
        HaproxyGlobals(stats_socket="/s", maxconn=1, nbthread=2, cpus=(1, 1))


@pytest.mark.parametrize("name", ["web\n", "web listen", "web'", ""])
def test_names_outside_the_safe_alphabet_are_refused(name: str) -> None:
    # model_construct skips validation: the view's own check is the last line of defence.
    from bascule.model import VirtualService

    with pytest.raises(ValueError, match="safe HAProxy identifier"):
        proxy_name(VirtualService.model_construct(name=name, address="198.18.0.100", port=80))
