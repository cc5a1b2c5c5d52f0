"""Constrained value types shared by the configuration model (pure; no I/O).

Everything a user types that ends up inside a generated engine configuration (names, paths,
hosts, header names and values, regular expressions, hex strings) is constrained here so that
no input can inject configuration: control characters (newlines included) are refused
everywhere, and the renderers quote what remains (see engines/haproxy/view.py).
Each validator raises ``ValueError`` with a message meant for a person; document.py turns it
into a ``FieldError`` that names the field path.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from bascule.text import has_control

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?(?::[0-9]{1,5})?$"
)
# RFC 9110 token characters: the only ones allowed in a header name or a cookie name.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9!#$%&*+.^_`|~-]{1,64}$")
# An HTTP path: visible ASCII only, no spaces (percent-encode them), starting with '/'.
_PATH = re.compile(r"^/[\x21-\x7e]{0,1023}$")
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")


def _strict_int(value: Any) -> Any:
    # YAML and JSON both give real integers; a bool is not a number here even though
    # Python thinks it is one.
    if isinstance(value, bool):
        raise ValueError("must be an integer, not true/false")
    return value


def bounded(low: int, high: int) -> Any:
    """An integer in ``low..high`` whose error names both bounds."""

    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return Annotated[
        int,
        BeforeValidator(_strict_int),
        AfterValidator(check),
        WithJsonSchema({"type": "integer", "minimum": low, "maximum": high}),
    ]


def seconds(low: float, high: float, *, whole: str | None = None) -> Any:
    """A duration in seconds, in ``low..high``: fractions down to the millisecond where the
    engines honour them (HAProxy's times take ms units, the L4 checker and nftables
    timeouts count in ms); ``whole``: the reason, said in the error, why only whole seconds
    are accepted. Whole values stay integers (``2``, not ``2.0``), so documents keep reading
    as they were written."""

    def check(value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number of seconds")
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a number of seconds")
        if not low <= value <= high:
            raise ValueError(f"must be between {_number(low)} and {_number(high)} seconds")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, float):
            if whole is not None:
                raise ValueError(f"must be a whole number of seconds: {whole}")
            if abs(value * 1000 - round(value * 1000)) > 1e-6:
                raise ValueError("must be a whole number of milliseconds (e.g. 0.25)")
            return round(value, 3)
        return value

    schema: dict[str, Any] = {"minimum": low, "maximum": high}
    schema["type"] = "integer" if whole is not None else "number"
    return Annotated[int | float, BeforeValidator(check), WithJsonSchema(schema)]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


Port = bounded(1, 65535)
Weight = bounded(1, 65535)


def _no_control(value: str) -> str:
    # C0, DEL, C1, the Unicode separators and bidi overrides (bascule.text)
    if has_control(value):
        raise ValueError("must not contain control characters (newlines, tabs, NUL, ESC...)")
    return value


def single_line(value: str, *, max_length: int) -> str:
    """``value`` as one line of free text to store and show (a revision message, an API
    token's name, an author): at most ``max_length`` characters, no control character.

    Every free text a person can store goes through this (or ``SafeText``): it ends up on
    terminals (``bascule history``), in pages and in the audit log, where an ESC or a newline
    could forge what others read. ValueError says why, for a FieldError."""
    _no_control(value)
    if len(value) > max_length:
        raise ValueError(f"must be at most {max_length} characters")
    return value


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            "must be 1 to 63 characters of a-z, 0-9 and '-', starting and ending "
            "with a letter or digit"
        )
    return value


def _address(value: str) -> str:
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None
    text = str(parsed)
    # the document's own string when it is written so already: the parsed model and the
    # stored document then hold one string per address, not two (issue 15)
    return value if text == value and type(value) is str else text


def _hostname(value: str) -> str:
    if not _HOSTNAME.fullmatch(value):
        raise ValueError("must be a host name such as www.example.com (optionally :port)")
    return value


def _path(value: str) -> str:
    _no_control(value)
    if not _PATH.fullmatch(value):
        raise ValueError(
            "must start with '/' and contain only visible ASCII characters "
            "(percent-encode spaces and others), at most 1024 characters"
        )
    return value


def _header_name(value: str) -> str:
    if not _TOKEN.fullmatch(value) or len(value) > 128:
        raise ValueError("must be an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)")
    return value


def _header_value(value: str) -> str:
    _no_control(value)
    if not value:
        # An engine cannot send an empty header (HAProxy drops it from health checks).
        raise ValueError("must not be empty")
    if len(value) > 1024:
        raise ValueError("must be at most 1024 characters")
    return value


def _cookie_name(value: str) -> str:
    if not _COOKIE_NAME.fullmatch(value):
        raise ValueError(
            "must be a cookie name: 1 to 64 letters, digits or !#$%&*+.^_`|~- "
            "(no spaces, quotes, commas or semicolons)"
        )
    return value


def _regex(value: str) -> str:
    _no_control(value)
    if not value:
        raise ValueError("must not be empty")
    if len(value) > 1024:
        raise ValueError("must be at most 1024 characters")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression: {exc}") from None
    return value


def _hex(value: str) -> str:
    if not _HEX.fullmatch(value) or len(value) > 2048:
        raise ValueError("must be pairs of hexadecimal digits, e.g. '0a1b2c', at most 1024 bytes")
    return value.lower()


def _text(value: str) -> str:
    _no_control(value)
    if len(value) > 4096:
        raise ValueError("must be at most 4096 characters")
    return value


Name = Annotated[str, AfterValidator(_name), Field(json_schema_extra={"pattern": _NAME.pattern})]
IPAddress = Annotated[str, AfterValidator(_address)]
Hostname = Annotated[str, AfterValidator(_hostname)]
HttpPath = Annotated[str, AfterValidator(_path)]
HeaderName = Annotated[str, AfterValidator(_header_name)]
HeaderValue = Annotated[str, AfterValidator(_header_value)]
CookieName = Annotated[str, AfterValidator(_cookie_name)]
Regex = Annotated[str, AfterValidator(_regex)]
Hex = Annotated[str, AfterValidator(_hex)]
SafeText = Annotated[str, AfterValidator(_text)]
