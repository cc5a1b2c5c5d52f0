"""Durations: fractions of a second where the engines honour them (health checks, the
adaptive agent's poll), whole seconds where one cannot (persistence: HAProxy's cookie
``maxidle`` counts seconds), with an error that says which; whole values stay integers."""

from __future__ import annotations

import pytest
from model_documents import CHECK, PERSIST, VS, Document, assert_refused, doc, service

from bascule.engines.haproxy.checks import haproxy_time
from bascule.model import parse_document


def test_a_check_takes_fractions_of_a_second() -> None:
    config = parse_document(doc(service(check={"interval": 0.5, "timeout": 0.25})))
    check = config.virtual_services[0].check
    assert (check.interval, check.timeout) == (0.5, 0.25)
    exported = config.to_document()["virtual_services"][0]["check"]
    assert (exported["interval"], exported["timeout"]) == (0.5, 0.25)


def test_whole_values_stay_integers() -> None:
    check = (
        parse_document(doc(service(check={"interval": 3.0, "timeout": 2})))
        .virtual_services[0]
        .check
    )
    assert (check.interval, check.timeout) == (3, 2)
    assert isinstance(check.interval, int) and isinstance(check.timeout, int)


def test_the_adaptive_agent_polls_at_fractions_too() -> None:
    config = parse_document(
        doc(service(scheduler="adaptive", adaptive={"interval": 1.5}, check={"type": "http"}))
    )
    adaptive = config.virtual_services[0].adaptive
    assert adaptive is not None and adaptive.interval == 1.5


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"check": {"interval": 0.05}}, f"{CHECK}.interval", "between 0.1 and 3600 seconds"),
        ({"check": {"timeout": 0.0001}}, f"{CHECK}.timeout", "between 0.1 and 3600 seconds"),
        (
            {"check": {"interval": 1.0005}},
            f"{CHECK}.interval",
            "must be a whole number of milliseconds",
        ),
        ({"check": {"interval": True}}, f"{CHECK}.interval", "must be a number of seconds"),
        ({"check": {"interval": "2"}}, f"{CHECK}.interval", "must be a number of seconds"),
        ({"check": {"interval": 0.5, "timeout": 1}}, f"{CHECK}.timeout", "longer than interval"),
        (
            {"persistence": {"method": "source_ip", "timeout": 90.5}},
            f"{PERSIST}.timeout",
            "must be a whole number of seconds: HAProxy's cookie maxidle counts whole seconds",
        ),
        (
            {"scheduler": "adaptive", "adaptive": {"interval": 0.5}, "check": {"type": "http"}},
            f"{VS}.adaptive.interval",
            "between 1 and 3600 seconds",
        ),
    ],
)
def test_refused_durations_name_their_field(fields: Document, path: str, message: str) -> None:
    assert_refused(doc(service(**fields)), path, message)


def test_persistence_timeouts_in_whole_seconds_are_accepted_as_floats_too() -> None:
    persistence = (
        parse_document(doc(service(persistence={"method": "source_ip", "timeout": 120.0})))
        .virtual_services[0]
        .persistence
    )
    assert persistence.timeout == 120 and isinstance(persistence.timeout, int)


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(2, "2s"), (2.0, "2s"), (0.5, "500ms"), (1.25, "1250ms"), (0.1, "100ms"), (3600, "3600s")],
)
def test_haproxy_reads_milliseconds_not_a_decimal_point(seconds: float, written: str) -> None:
    assert haproxy_time(seconds) == written
