"""HAProxy's quoting: every user string as one word of a configuration line.

Free text (paths, hosts, header names and values, regular expressions, bodies, file paths) goes
through ``quote`` (strong quoting, configuration.txt section 2.2); log-format arguments through
``quote_log_format`` (which also doubles ``%``, section 8.2.6); identifiers the model
constrains to a safe alphabet (service names, IP addresses, hex strings) through ``token``,
which re-checks that alphabet and refuses anything else. Pure; shared by the view and its
nouns (``checks.py``, ``peers.py``).
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What may appear unquoted: HAProxy's own name alphabet (letters, digits, '.', ':', '_',
# '-') plus '[', ']' and '/' for bracketed IPv6 addresses and "proxy/server" references.
# No space, quote, '#', '\\' or '$', the characters section 2.2 gives a meaning to.
_TOKEN = re.compile(r"^[A-Za-z0-9_.:\[\]/-]+$")


# --------------------------------------------------------------------------- quoting


def quote(text: str) -> str:
    """``text`` as one HAProxy word in strong quoting (section 2.2).

    Inside single quotes nothing is interpreted (spaces, '#', '$', '"', '\\' are literal);
    a literal single quote, which has no representation there, closes the quotes, is
    escaped, and reopens them: ``it's`` -> ``'it'\\''s'``. LF and CR cannot be represented
    at all, so control characters raise ValueError (the model refuses them earlier).
    """
    if _CONTROL.search(text):
        raise ValueError(f"control characters cannot be written to an HAProxy config: {text!r}")
    return "'" + text.replace("'", "'\\''") + "'"


def quote_log_format(text: str) -> str:
    """``text`` as a literal log-format argument: '%' doubled (section 8.2.6), then quoted.

    Without the doubling, ``%[src]`` in a header value would be evaluated by HAProxy.
    """
    return quote(text.replace("%", "%%"))


def token(text: str) -> str:
    """A model-validated identifier emitted unquoted; anything outside the alphabet raises."""
    if not _TOKEN.fullmatch(text):
        raise ValueError(f"{text!r} is not a safe HAProxy identifier")
    return text
