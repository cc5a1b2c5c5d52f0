"""Free text a person stores is one printable line (finding 5): ``single_line`` and the
model's own texts refuse C0, DEL, C1, the Unicode line separators and the bidi overrides."""

from __future__ import annotations

import pytest

from bascule.errors import InvalidConfiguration
from bascule.model import parse_document
from bascule.model.types import single_line
from bascule.text import has_control

HOSTILE = [
    "\x1b[2J",  # ESC: clears a terminal
    "a\x00b",  # NUL
    "two\nlines",
    "car\rriage",
    "tab\there",
    "del\x7f",
    "csi\x9b31m",  # C1 CSI
    "line\u2028separator",
    "right\u202eto-left",
    "isolate\u2066x",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_control_characters_are_refused(text: str) -> None:
    assert has_control(text)
    with pytest.raises(ValueError, match="control characters"):
        single_line(text, max_length=100)


@pytest.mark.parametrize("text", ["why: drain for maintenance", "é ü — 日本", "[bold]x[/]"])
def test_printable_text_passes(text: str) -> None:
    assert not has_control(text)
    assert single_line(text, max_length=100) == text


def test_the_length_is_bounded() -> None:
    with pytest.raises(ValueError, match="at most 10 characters"):
        single_line("x" * 11, max_length=10)


def test_the_documents_free_text_refuses_c1_too() -> None:
    document = {
        "virtual_services": [
            {
                "name": "web",
                "address": "198.18.0.100",
                "port": 80,
                "check": {"type": "http", "method": "POST", "post_data": "x\x9b31m"},
                "real_servers": [{"address": "198.18.0.4", "port": 80}],
            }
        ]
    }
    with pytest.raises(InvalidConfiguration, match=r"post_data: must not contain control"):
        parse_document(document)
