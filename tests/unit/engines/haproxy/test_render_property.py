"""Every document the model accepts renders, and HAProxy accepts what is rendered (finding 7).

Whatever the model refuses is fine (a field error); whatever it accepts must render without
an exception and pass the real ``haproxy -c``. Before, a persistence ``header`` with a quote
passed the model and made the renderer raise (a 500). Two tests hold every free-text field
the renderer prints to that:

- each field, with each character that means something to HAProxy's parser (2.2 quoting,
  8.2.6 log formats, 7.1 sample arguments, ACL braces) or to a shell, one at a time inside an
  ordinary word: exhaustive, one ``haproxy -c`` per field;
- a property test (hypothesis): documents of one to three services drawing schedulers,
  persistence methods, check types and hostile strings together; 80 examples, derandomised by
  tests/conftest.py, one ``haproxy -c`` each, a few seconds in all.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bascule.engines.haproxy.peers import PeersListener
from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.view import HaproxyGlobals, build_view
from bascule.errors import InvalidConfiguration
from bascule.model import (
    CheckType,
    Configuration,
    Mode,
    PersistenceMethod,
    Scheduler,
    parse_document,
)

HAPROXY = Path("/usr/sbin/haproxy")
GLOBALS = HaproxyGlobals(
    stats_socket="/run/bascule-test/haproxy.sock",
    maxconn=1000,
    nbthread=1,
    local_peer=PeersListener(address="/run/bascule-test/peers.sock"),
)
HOSTILE = "'\"\\ #$%{}[]()|,;&!<>=*+^`~:@/?.-_é€\u00a0"

pytestmark = pytest.mark.skipif(not HAPROXY.exists(), reason=f"no HAProxy at {HAPROXY}")

Edit = Callable[[str], dict[str, Any]]
SERVERS = [{"address": "198.18.0.4", "port": 80}, {"address": "2001:2::5", "port": 8080}]


def http_check(**fields: Any) -> dict[str, Any]:
    return {"check": {"type": "http", **fields}}


#: Each free-text field the HAProxy view prints: the service fields that carry ``text``.
FIELDS: dict[str, Edit] = {
    "check.path": lambda text: http_check(path=f"/{text}"),
    "check.host": lambda text: http_check(host=text),
    "check.header name": lambda text: http_check(headers={text: "yes"}),
    "check.header value": lambda text: http_check(headers={"X-Check": text}),
    "check.post_data": lambda text: http_check(method="POST", post_data=text),
    "check.expect_body": lambda text: http_check(expect_body=text),
    "check.expect_status": lambda text: http_check(expect_status=text),
    "persistence.cookie (active)": lambda text: {
        "persistence": {"method": "active_cookie", "cookie": text}
    },
    "persistence.cookie (server)": lambda text: {
        "persistence": {"method": "server_cookie", "cookie": text}
    },
    "persistence.header": lambda text: {
        "persistence": {"method": "selected_header", "header": text}
    },
    "persistence.query_item": lambda text: {
        "persistence": {"method": "query_item", "query_item": text}
    },
    "adaptive.url": lambda text: {"scheduler": "adaptive", "adaptive": {"url": f"/{text}"}},
}


def service(index: int, edit: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"vs-{index}",
        "address": "198.18.0.100",
        "port": 8000 + index,
        "real_servers": SERVERS,
        **edit,
    }


def accepted(document: dict[str, Any]) -> Configuration | None:
    try:
        return parse_document(document)
    except InvalidConfiguration:
        return None


def haproxy_check(text: str, directory: Path) -> None:
    path = directory / "haproxy.cfg"
    path.write_text(text)
    checked = subprocess.run(
        [str(HAPROXY), "-c", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr + "\n" + text


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_each_field_with_each_odd_character(field: str, tmp_path: Path) -> None:
    services = []
    for character in HOSTILE:
        one = service(len(services), FIELDS[field](f"X{character}Y"))
        if accepted({"virtual_services": [one]}) is not None:
            services.append(one)
    config = parse_document({"virtual_services": services})
    haproxy_check(render(build_view(config, GLOBALS)), tmp_path)  # must not raise either


def l7(enum_type: Any) -> list[Any]:
    return [member.value for member in enum_type if Mode.l7 in member.modes]


hostile_text = st.one_of(
    st.builds(lambda c: f"X{c}Y", st.sampled_from(HOSTILE)),
    st.builds(lambda a, b: f"X{a}Y{b}Z", st.sampled_from(HOSTILE), st.sampled_from(HOSTILE)),
    st.text(alphabet=st.sampled_from(HOSTILE + "aZ09"), min_size=1, max_size=12),
)


@st.composite
def services(draw: Callable[..., Any], index: int) -> dict[str, Any]:
    field = draw(st.sampled_from(sorted(FIELDS)))
    edit = FIELDS[field](draw(hostile_text))
    drawn = service(index, edit)
    drawn["real_servers"] = [
        {**rs, "weight": draw(st.integers(1, 65535))} for rs in drawn["real_servers"]
    ]
    if "scheduler" not in edit:
        drawn["scheduler"] = draw(st.sampled_from([s for s in l7(Scheduler) if s != "adaptive"]))
    if "persistence" not in edit:
        drawn["persistence"] = {"method": draw(st.sampled_from(l7(PersistenceMethod)))}
    if "check" not in edit:
        drawn["check"] = {"type": draw(st.sampled_from(l7(CheckType)))}
        if drawn["check"]["type"] == CheckType.binary.value:
            drawn["check"]["send_hex"] = "0a0b"
    return drawn


documents = st.integers(1, 3).flatmap(
    lambda count: st.tuples(*(services(index) for index in range(count)))
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_what_the_model_accepts_haproxy_accepts(
    tmp_path_factory: pytest.TempPathFactory, drawn: tuple[dict[str, Any], ...]
) -> None:
    config = accepted({"virtual_services": list(drawn)})
    event("accepted" if config is not None else "refused")
    if config is None:
        return  # refused with field errors: what the model is for
    haproxy_check(render(build_view(config, GLOBALS)), tmp_path_factory.mktemp("cfg"))
