"""From a verdict to the committed document (detect/resolve.py)."""

from __future__ import annotations

from typing import Any

from bascule.detect import Verdict, check_given, choose, rewrite
from bascule.detect.resolve import Choice
from bascule.model import CheckType, ServiceType, parse_document

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


def test_rdp_on_l7_gets_a_tcp_check_since_haproxy_has_no_rdp_check() -> None:
    choice = choose(RDP, vs(), keep_check=False)
    assert choice == Choice(
        type=ServiceType.remote_terminal,
        check=CheckType.tcp,
        notes=("rdp checks are not supported yet on l7 services: a tcp check instead",),
    )


def test_rdp_on_l4_keeps_its_rdp_check() -> None:
    choice = choose(RDP, vs(mode="l4"), keep_check=False)
    assert (choice.type, choice.check) == (ServiceType.generic, CheckType.rdp)


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
