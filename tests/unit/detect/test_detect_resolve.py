"""From a verdict to the committed document (detect/resolve.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.detect import Verdict, check_given, choose, rewrite
from bascule.detect.resolve import Choice
from bascule.model import CheckType, ServiceType, parse_document
from bascule.model import support as support_tables

HTTP = Verdict(type=ServiceType.http, check=CheckType.http, evidence="e", conclusive=True)
RDP = Verdict(type=ServiceType.remote_terminal, check=CheckType.rdp, evidence="e", conclusive=True)


def service(**fields: Any) -> dict[str, Any]:
    return {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "type": "auto",
        "real_servers": [{"address": "198.18.0.11", "port": 80}],
        **fields,
    }


def vs(**fields: Any) -> Any:
    return parse_document({"virtual_services": [service(**fields)]}).virtual_services[0]


def test_the_detected_type_and_check_are_taken() -> None:
    assert choose(HTTP, vs(), keep_check=False) == Choice(
        type=ServiceType.http, check=CheckType.http
    )


def test_a_users_check_is_kept() -> None:
    assert choose(HTTP, vs(), keep_check=True) == Choice(type=ServiceType.http, check=None)


def test_an_l4_service_stays_generic_with_the_detected_check() -> None:
    choice = choose(HTTP, vs(mode="l4"), keep_check=False)
    assert (choice.type, choice.check) == (ServiceType.generic, CheckType.http)
    assert "an l4 service is generic" in choice.notes[0]


def test_rdp_on_l7_gets_a_tcp_check_while_rdp_checks_are_not_supported() -> None:
    choice = choose(RDP, vs(), keep_check=False)
    if ServiceType.remote_terminal in support_tables.UNSUPPORTED_TYPES:
        assert choice.type is ServiceType.generic
        assert any("remote_terminal is not supported yet" in note for note in choice.notes)
    else:
        assert choice.type is ServiceType.remote_terminal
    if CheckType.rdp in support_tables.UNSUPPORTED_CHECKS:
        assert choice.check is CheckType.tcp
        assert any("rdp checks are not supported yet" in note for note in choice.notes)


def test_an_unsupported_type_becomes_generic_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bascule.detect.resolve.UNSUPPORTED_TYPES", {ServiceType.remote_terminal})
    choice = choose(RDP, vs(), keep_check=False)
    assert choice.type is ServiceType.generic
    assert "remote_terminal is not supported yet: type generic instead" in choice.notes[0]


def test_rewrite_fills_in_type_and_check_and_leaves_the_rest() -> None:
    document = {
        "virtual_services": [
            service(name="a", check={"interval": 5}),
            service(name="b", port=81, type="http"),
        ]
    }
    result = rewrite(document, {0: Choice(type=ServiceType.http, check=CheckType.http)})
    assert result["virtual_services"][0]["type"] == "http"
    assert result["virtual_services"][0]["check"] == {"interval": 5, "type": "http"}
    assert result["virtual_services"][1] == document["virtual_services"][1]
    assert document["virtual_services"][0]["type"] == "auto"  # the input is not changed
    parse_document(result)


def test_check_given() -> None:
    document = {"virtual_services": [service(), service(check={"type": "none"})]}
    assert not check_given(document, 0)
    assert check_given(document, 1)
