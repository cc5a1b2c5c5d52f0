"""Which fields of a service form apply (web/fields.py), decided from the model's facts."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.model import CheckType, Mode, PersistenceMethod
from bascule.web.fields import (
    SECTIONS,
    SERVICE_FIELDS,
    SUB_SERVICE_SECTIONS,
    FormContext,
    applicable,
    shown_sections,
)
from bascule.web.option_fields import cache_fields, limits_fields, limits_value, switched


def _names(shown: dict[str, Any], **kwargs: Any) -> set[str]:
    context = FormContext.of(shown, **kwargs)
    return {s.field.name for _, _, fields in shown_sections(SECTIONS, context) for s in fields}


def test_the_mode_decides_its_options() -> None:
    l7 = _names({"mode": "l7", "type": "http"})
    l4 = _names({"mode": "l4", "type": "generic"})
    assert {"transparent", "forwarded", "slow_start"} <= l7
    assert not {"forwarding", "subnet_originating", "drop_on_failure"} & l7
    assert {"forwarding", "subnet_originating", "drop_on_failure"} <= l4
    assert not {"transparent", "proxy_protocol", "accept_proxy"} & l4
    # automatic mode: the protocol's default (udp is l4)
    assert "forwarding" in _names({"mode": "", "protocol": "udp"})


@pytest.mark.parametrize("method", list(PersistenceMethod))
def test_persistence_settings_follow_the_method(method: PersistenceMethod) -> None:
    names = _names({"mode": "l7", "persistence.method": method.value})
    shown = {n.partition(".")[2] for n in names if n.startswith("persistence.")}
    assert shown == {"method", *method.settings} - {"headers"}


def test_named_settings() -> None:
    assert "persistence.cookie" in _names({"persistence.method": "active_cookie"})
    assert "persistence.header" in _names({"persistence.method": "selected_header"})
    assert "persistence.source_mask" in _names({"persistence.method": "source_ip"})
    assert not any(n.startswith("persistence.") and n != "persistence.method"
                   for n in _names({"persistence.method": "none"}))  # fmt: skip


@pytest.mark.parametrize("check", list(CheckType))
def test_check_settings_follow_the_type(check: CheckType) -> None:
    names = _names({"check.type": check.value})
    shown = {n.partition(".")[2] for n in names if n.startswith("check.")}
    # every setting a check reads has a field, but the headers (a mapping: not in the form)
    assert shown == {"type", *check.settings} - {"headers"}


def test_an_automatic_check_is_the_one_of_the_type() -> None:
    assert "check.path" in _names({"check.type": "", "type": "http"})
    assert "check.path" not in _names({"check.type": "", "type": "generic"})


def test_a_sub_service_inherits_mode_and_type_but_not_its_settings() -> None:
    context = FormContext.of({"check.type": ""}, inherited={"mode": "l7", "type": "http"})
    assert context.mode is Mode.l7 and context.check is None
    names = {
        s.field.name
        for _, _, fields in shown_sections(SUB_SERVICE_SECTIONS, context)
        for s in fields
    }
    assert names == {"scheduler", "persistence.method", "check.type"}


def test_choices_the_mode_forbids_are_not_offered() -> None:
    context = FormContext.of({"mode": "l4", "type": "generic"})
    sections = dict((key, fields) for key, _, fields in shown_sections(SECTIONS, context))
    method = next(s for s in sections["standard"] if s.field.name == "persistence.method")
    offered = {value for value, _ in method.choices}
    assert offered == {m.value for m in PersistenceMethod if Mode.l4 in m.modes}


def test_every_service_field_is_shown_somewhere() -> None:
    everything = FormContext.of({"mode": "l7", "type": "http", "persistence.method": "none"})
    contexts = [
        everything,
        FormContext.of({"mode": "l4", "type": "generic"}),
        FormContext.of({"persistence.method": "active_cookie"}),
        FormContext.of({"persistence.method": "selected_header"}),
        FormContext.of({"persistence.method": "query_item"}),
        FormContext.of({"persistence.method": "source_ip"}),
        FormContext.of({"check.type": "binary"}),
        FormContext.of(
            {
                "type": "http",
                "tls.certificates": "shop",
                "tls.client_certificate": "required",
                "tls.reencrypt": "true",
            }
        ),
        *(
            FormContext.of({"type": "http", "not_available.kind": kind})
            for kind in ("sorry_server", "respond", "redirect")
        ),
        FormContext.of(
            {
                "type": "http",
                "cache.enabled": True,
                "compression.enabled": True,
                "authentication.enabled": True,
            }
        ),
    ]
    for field in SERVICE_FIELDS:
        assert any(applicable(field, c) for c in contexts), field.name


def test_ssl_settings_show_once_a_certificate_is_named() -> None:
    plain = _names({"mode": "l7", "type": "http"})
    assert {n for n in plain if n.startswith("tls.")} == {"tls.certificates"}
    offload = _names({"mode": "l7", "type": "http", "tls.certificates": "shop"})
    assert {"tls.cipher_set", "tls.hsts", "tls.reencrypt"} <= offload
    assert "tls.client_ca" not in offload and "tls.server_ca" not in offload
    both = _names({"type": "http", "tls.certificates": "shop",
                   "tls.client_certificate": "optional", "tls.reencrypt": True})  # fmt: skip
    assert {"tls.client_ca", "tls.server_ca", "tls.verify_server"} <= both
    assert not any(n.startswith("tls.") for n in _names({"mode": "l4", "type": "generic"}))
    assert not any(n.startswith("tls.") for n in _names({"type": "auto"}))


def test_the_limits_and_cache_groups_work_under_any_prefix() -> None:
    """A form of another object (a rule, a sub-service) shows the same groups under its own
    prefix, judged by the same rules."""
    sections = (
        ("limits", "Limits", limits_fields("rules[0].limits")),
        ("cache", "Cache", cache_fields("rules[0].cache")),
    )

    def shown(values: dict[str, object]) -> set[str]:
        context = FormContext.of(values)
        return {s.field.name for _, _, fs in shown_sections(sections, context) for s in fs}

    l4 = shown({"mode": "l4", "type": "generic"})
    assert "rules[0].limits.per_client.connections" in l4
    assert "rules[0].limits.per_client.requests_per_second" not in l4
    assert "rules[0].limits.response.code" not in l4
    assert not any(name.startswith("rules[0].cache") for name in l4)
    off = shown({"mode": "l7", "type": "http"})
    assert "rules[0].cache.enabled" in off and "rules[0].cache.size_mb" not in off
    on = shown({"mode": "l7", "type": "http", "rules[0].cache.enabled": "true"})
    assert {"rules[0].cache.size_mb", "rules[0].limits.response.code"} <= on
    switch = next(
        s
        for _, _, fs in shown_sections(sections, FormContext.of({"type": "http"}))
        for s in fs
        if s.field.name == "rules[0].cache.enabled"
    )
    assert switch.context  # ticking it swaps the settings in


def test_a_posted_group_becomes_the_documents_value() -> None:
    assert switched({"enabled": False, "size_mb": 64}) is None
    assert switched({"enabled": True, "size_mb": 64}) == {"size_mb": 64}
    assert limits_value({"max_connections": None, "per_client": {"connections": None},
                         "response": {"code": "429"}, "exempt": []}) is None  # fmt: skip
    assert limits_value(
        {"max_connections": 5, "per_client": {"connections": None}, "response": {"code": "503"}}
    ) == {"max_connections": 5, "per_client": None, "response": {"code": 503}}
