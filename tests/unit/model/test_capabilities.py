"""The facts of each scheduler, persistence method and check type (model/capabilities.py),
and the Host header and SNI every http or https check sends."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bascule.model import CheckType, Mode, PersistenceMethod, Scheduler, ServiceType
from bascule.model.capabilities import CHECK_TYPES, PERSISTENCE_METHODS, SCHEDULERS
from bascule.model.check import sni_for
from bascule.model.virtual_service import VirtualService


def test_every_member_has_its_facts() -> None:
    assert set(SCHEDULERS) == set(Scheduler)
    assert set(PERSISTENCE_METHODS) == set(PersistenceMethod)
    assert set(CHECK_TYPES) == set(CheckType)


def test_what_l4_allows() -> None:
    assert {s for s in Scheduler if Mode.l4 in s.modes} == {
        Scheduler.round_robin,
        Scheduler.weighted_round_robin,
        Scheduler.least_connection,
        Scheduler.weighted_least_connection,
        Scheduler.fixed_weighting,
        Scheduler.source_ip_hash,
    }
    assert {p for p in PersistenceMethod if Mode.l4 in p.modes} == {
        PersistenceMethod.none,
        PersistenceMethod.source_ip,
    }
    assert {c for c in CheckType if Mode.l4 in c.modes} == set(CheckType)


def test_what_l7_allows() -> None:
    assert {s for s in Scheduler if Mode.l7 in s.modes} == set(Scheduler)
    assert {p for p in PersistenceMethod if Mode.l7 in p.modes} == set(PersistenceMethod)
    # HAProxy has no icmp, dns or rdp check
    assert {c for c in CheckType if Mode.l7 not in c.modes} == {
        CheckType.icmp,
        CheckType.dns,
        CheckType.rdp,
    }


def test_scheduler_facts() -> None:
    assert {s for s in Scheduler if s.counts_connections} == {
        Scheduler.least_connection,
        Scheduler.weighted_least_connection,
    }
    assert {s for s in Scheduler if s.dynamic} == {
        Scheduler.adaptive,
        Scheduler.weighted_response_time,
    }
    assert Scheduler.url_hash.needs_type is ServiceType.http
    assert Scheduler.weighted_response_time.needs_check
    assert not Scheduler.least_connection.weighted and Scheduler.weighted_least_connection.weighted


def test_persistence_methods_read_their_key_from_one_service_type() -> None:
    needs = {method: method.needs_type for method in PersistenceMethod if method.needs_type}
    assert needs.pop(PersistenceMethod.ssl_session_id) is ServiceType.generic
    assert needs.pop(PersistenceMethod.rdp_cookie) is ServiceType.remote_terminal
    assert set(needs.values()) == {ServiceType.http}
    assert PersistenceMethod.none.needs_type is None
    assert PersistenceMethod.source_ip.needs_type is None


@pytest.mark.parametrize(
    ("kind", "greeting", "matches"),
    [
        (CheckType.smtp, "220 mail.example ESMTP Postfix", True),
        (CheckType.smtp, "554 no service", False),
        (CheckType.ftp, "220 (vsFTPd 3.0.3)", True),
        (CheckType.pop3, "+OK Dovecot ready.", True),
        (CheckType.pop3, "* OK IMAP4rev1", False),
        (CheckType.imap, "* OK IMAP4rev1 ready", True),
        (CheckType.imap, "+OK POP3 ready", False),
    ],
)
def test_banners(kind: CheckType, greeting: str, matches: bool) -> None:
    assert kind.banner is not None
    assert bool(re.match(kind.banner, greeting)) is matches


def test_only_the_protocols_that_greet_have_a_banner() -> None:
    assert {c for c in CheckType if c.banner} == {
        CheckType.smtp,
        CheckType.ftp,
        CheckType.pop3,
        CheckType.imap,
    }


def service(**fields: Any) -> VirtualService:
    base: dict[str, Any] = {"name": "web", "address": "198.18.0.100", "port": 80}
    return VirtualService.model_validate({**base, **fields})


@pytest.mark.parametrize(
    ("fields", "host"),
    [
        ({"check": {"type": "http"}}, "198.18.0.100"),
        ({"port": 8080, "check": {"type": "http"}}, "198.18.0.100:8080"),
        ({"port": 443, "check": {"type": "https"}}, "198.18.0.100"),
        ({"port": 80, "check": {"type": "https"}}, "198.18.0.100:80"),
        ({"address": "2001:db8::100", "check": {"type": "http"}}, "[2001:db8::100]"),
        ({"address": "2001:db8::100", "port": 81, "check": {"type": "http"}}, "[2001:db8::100]:81"),
        ({"check": {"type": "http", "host": "www.example.com"}}, "www.example.com"),
        ({"check": {"type": "tcp"}}, None),
        (
            {"mode": "l4", "protocol": "udp", "check": {"type": "dns", "host": "ns1.example"}},
            "ns1.example",
        ),
    ],
)
def test_the_host_header_of_a_check(fields: dict[str, Any], host: str | None) -> None:
    assert service(**fields).check_host == host


@pytest.mark.parametrize(
    ("host", "sni"),
    [
        ("www.example.com", "www.example.com"),
        ("www.example.com:8443", "www.example.com"),
        ("www.example.com.", "www.example.com"),
        ("198.18.0.100", None),
        ("198.18.0.100:443", None),
        ("[2001:db8::1]:443", None),
        ("[2001:db8::1]", None),
    ],
)
def test_sni_is_a_name_never_an_address(host: str, sni: str | None) -> None:
    assert sni_for(host) == sni
