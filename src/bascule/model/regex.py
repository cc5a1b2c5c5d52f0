"""Regular expressions that HAProxy's PCRE2 and Python read alike (pure; no I/O).

A content rule's ``path_regex``, a header rule's ``regex`` and ``rewrite_path.regex`` end up
in haproxy.cfg, where PCRE2 compiles them when HAProxy loads the file. The model must refuse
every expression HAProxy would refuse (the document is refused by the model, never by the
engine) and must not accept one that PCRE2 reads differently from what the user tested. It
cannot run PCRE2 itself, so it accepts the common subset of both dialects and refuses the rest
with a message that says what to write instead:

- it must compile with Python's ``re`` (without a warning: ``[[`` is a set in one and a
  literal in the other);
- a backslash escapes punctuation, or is one of ``\\d \\D \\w \\W \\s \\S \\b \\B`` or a
  back-reference ``\\1``..``\\9`` (``\\Z``, ``\\x``, ``\\p``, ``\\g``... differ between them);
- a group is plain ``(...)``, ``(?:...)``, a lookaround ``(?=`` ``(?!`` ``(?<=`` ``(?<!``, or the
  flag ``(?i)`` at the very start (named groups and inline flags elsewhere differ);
- ``{,n}`` is refused (a quantifier in Python, a literal in PCRE2 10.42);
- ``[:`` inside a class is refused (POSIX classes exist in PCRE2 only).
"""

from __future__ import annotations

import re
import warnings

from bascule.text import has_control

MAX_LENGTH = 1024
_ESCAPES = frozenset("dDwWsSbB")
_GROUPS = ("(?:", "(?=", "(?!", "(?<=", "(?<!")


def portable_regex(value: str) -> str:
    """``value`` if both PCRE2 and Python read it alike, else ValueError saying why."""
    if not value:
        raise ValueError("must not be empty")
    if has_control(value):
        raise ValueError("must not contain control characters (newlines, tabs, NUL, ESC...)")
    if len(value) > MAX_LENGTH:
        raise ValueError(f"must be at most {MAX_LENGTH} characters")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            re.compile(value)
        except (re.error, FutureWarning, DeprecationWarning) as exc:
            raise ValueError(f"is not a valid regular expression: {exc}") from None
    _subset(value)
    return value


def _subset(value: str) -> None:
    in_class = False
    index = 0
    while index < len(value):
        char = value[index]
        if char == "\\":
            escaped = value[index + 1 : index + 2]
            if escaped.isalnum() and escaped not in _ESCAPES and not _backref(escaped):
                raise ValueError(
                    f"\\{escaped} at position {index} is not accepted: use \\d \\D \\w \\W \\s "
                    "\\S \\b \\B, \\1..\\9 or a backslash before punctuation (HAProxy's PCRE2 "
                    "must read the expression as Bascule does)"
                )
            index += 2
            continue
        if in_class:
            if char == "[" and value[index + 1 : index + 2] == ":":
                raise ValueError(
                    f"[: at position {index}: POSIX classes are not accepted, write the "
                    "characters (e.g. [a-z] for [:lower:])"
                )
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            # a ']' first in the class (after an optional '^') is a literal in both
            index += 1
            if value[index : index + 1] == "^":
                index += 1
            if value[index : index + 1] == "]":
                index += 1
            continue
        elif char == "(" and value[index + 1 : index + 2] == "?":
            if not (value.startswith(_GROUPS, index) or (index == 0 and value.startswith("(?i)"))):
                raise ValueError(
                    f"the group at position {index} is not accepted: use (...), (?:...), "
                    "(?=...), (?!...), (?<=...), (?<!...) or (?i) at the very start"
                )
        elif char == "{" and value[index + 1 : index + 2] == ",":
            raise ValueError(f"{{,n}} at position {index}: write {{0,n}}")
        index += 1


def _backref(escaped: str) -> bool:
    return len(escaped) == 1 and "1" <= escaped <= "9"
