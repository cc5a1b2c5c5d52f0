"""Control characters in text people and clients send: found, escaped, and text clipped.

Outside the layers, like ``errors``: the model refuses control characters in every free text a
person stores (``model.types.single_line``), the audit log stores what requests carry (a path,
a user name tried) with them escaped and cut short, and the CLI escapes whatever it prints to a
terminal (``cli.output``). One definition serves all three, and importing it costs the CLI
nothing (``re`` only).

A control character is C0 (NUL, TAB, LF, CR, ESC...), DEL, C1 (0x80-0x9f: 0x9b is CSI on some
terminals), the Unicode line and paragraph separators, and the bidirectional overrides and
isolates (which reorder what a terminal or a page shows).
"""

from __future__ import annotations

import re

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: The same without the line feed, for text whose own line breaks are layout.
CONTROL_BUT_NEWLINE = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character."""
    return CONTROL.search(text) is not None


def escape(match: re.Match[str]) -> str:
    """One control character as a visible escape: ``\\n``, ``\\x1b``, ``\\u202e``."""
    character = match[0]
    short = _SHORT.get(character)
    if short is not None:
        return short
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """``text`` with every control character shown as an escape: ``a\\x1b[2Jb``."""
    return CONTROL.sub(escape, text)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
