"""Content rules, header rules, path rewriting and "not available" handling (pure model).

The L7 sections of an http virtual service, with the issue's names (LoadMaster's content
rules, SubVS, header modification, AddVia and sorry server, in snake_case):

- ``rules``: ordered; the first whose ``match`` holds decides what happens to a request
  (``use`` a sub-service, ``redirect``, ``respond``, ``use_default``); no match: the default
  pool (the service's own real servers);
- ``request_headers`` / ``response_headers``: header operations applied in order;
- ``rewrite_path``: a regular expression and its replacement, for the service or one rule;
- ``not_available``: what clients get when no real server of the pool is up.

Every string here reaches haproxy.cfg, so each is constrained to what can be written there
safely (the engine quotes what remains): header and query names to a name alphabet that a
sample fetch's argument can carry, values without control characters, regular expressions to
what PCRE2 and Python read alike (``regex.py``), URLs without spaces or controls.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from bascule.model.capabilities import HeaderOperationKind, MatchKind, RuleActionKind
from bascule.model.limits import Limits
from bascule.model.regex import portable_regex
from bascule.model.types import HeaderValue, Hostname, HttpPath, IPAddress, Name, Port, SafeText
from bascule.model.types import bounded as _bounded

# A header or query parameter name that a sample fetch's argument carries as is
# (``req.hdr(<name>)``, ``url_param(<name>)``, HAProxy 7.3.6): no quote, comma or parenthesis.
_FIELD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# RFC 9110 methods are tokens; every registered one is upper-case letters.
_METHOD = re.compile(r"^[A-Z]{1,20}$")
# A query value as it appears in the URL (url_param does not decode it): visible ASCII
# without the separators '&', '#' and '='.
_QUERY_VALUE = re.compile(r"^[\x21-\x7e]{1,1024}$")
# A redirect target: an absolute http(s) URL or a path; visible ASCII only.
_DOMAIN = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
_URL = re.compile(r"^(?:https?://[A-Za-z0-9.\-\[\]:]+(?:/[\x21-\x7e]*)?|/[\x21-\x7e]*)$")

REDIRECT_CODES = (301, 302, 303, 307, 308)
#: Status codes ``respond`` may answer with (HAProxy's ``http-request return`` takes 200..599).
RESPOND_CODES = (200, 599)
#: Statuses that carry no body (RFC 9110 15.3.5, 15.4.5).
BODYLESS = (204, 304)
MAX_BODY = 4096


def _field_name(value: str) -> str:
    if not _FIELD_NAME.fullmatch(value):
        raise ValueError(
            "must be 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return value


def _method(value: str) -> str:
    if not _METHOD.fullmatch(value):
        raise ValueError("must be an HTTP method in capitals, such as GET or POST")
    return value


def _query_value(value: str) -> str:
    if not _QUERY_VALUE.fullmatch(value) or any(c in value for c in "&#="):
        raise ValueError(
            "must be 1 to 1024 visible ASCII characters without '&', '#' or '=' "
            "(as it appears in the URL, percent-encoded)"
        )
    return value


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an address or network such as 198.18.0.0/24") from None
    return str(network)


def _suffix(value: str) -> str:
    domain = value.removeprefix(".").lower()
    if not _DOMAIN.fullmatch(domain) or len(domain) > 253:
        raise ValueError("must be a domain such as example.com (no port)")
    return domain


def _url(value: str) -> str:
    if not _URL.fullmatch(value) or len(value) > 2048:
        raise ValueError(
            "must be an http:// or https:// URL or a path starting with '/', visible ASCII "
            "only (percent-encode spaces), at most 2048 characters"
        )
    return value


def _not_empty(value: str) -> str:
    # HAProxy drops an empty word, so an empty argument would shift the others (2.2)
    if not value:
        raise ValueError("must not be empty (HAProxy cannot take an empty argument)")
    return value


def _body(value: str) -> str:
    if len(value) > MAX_BODY:
        raise ValueError(f"must be at most {MAX_BODY} characters")
    return value


FieldName = Annotated[str, AfterValidator(_field_name)]
Method = Annotated[str, AfterValidator(_method)]
QueryValue = Annotated[str, AfterValidator(_query_value)]
Network = Annotated[str, AfterValidator(_cidr)]
DomainSuffix = Annotated[str, AfterValidator(_suffix)]
Url = Annotated[str, AfterValidator(_url)]
PortableRegex = Annotated[str, AfterValidator(portable_regex)]
Body = Annotated[SafeText, AfterValidator(_body)]


def _lower_host(value: str) -> str:
    return value.lower()


class HeaderMatch(BaseModel):
    """A request header equal to ``value`` or matching ``regex`` (exactly one is given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: FieldName
    value: HeaderValue | None = None
    regex: PortableRegex | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.value is None) == (self.regex is None):
            raise ValueError("give exactly one of value or regex")
        return self


class QueryMatch(BaseModel):
    """A query parameter ``name`` whose value (as written in the URL) is ``value``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: FieldName
    value: QueryValue


class Match(BaseModel):
    """What a request must be for a rule to apply: every condition given holds (``negate``:
    every condition given holds is false). At least one condition is given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: Annotated[Hostname, AfterValidator(_lower_host)] | None = None
    host_suffix: DomainSuffix | None = None
    path: HttpPath | None = None
    path_prefix: HttpPath | None = None
    path_regex: PortableRegex | None = None
    header: HeaderMatch | None = None
    query: QueryMatch | None = None
    method: Method | None = None
    source: Network | None = None
    negate: bool = False

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.kinds:
            names = ", ".join(kind.value for kind in MatchKind)
            raise ValueError(f"give at least one condition ({names})")
        return self

    @property
    def kinds(self) -> tuple[MatchKind, ...]:
        """The conditions given, in the order of ``MatchKind``."""
        return tuple(kind for kind in MatchKind if getattr(self, kind.value) is not None)


class RewritePath(BaseModel):
    """Replace the request's path where ``regex`` matches with ``with`` (``\\1`` refers to
    the first group)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    regex: PortableRegex
    replacement: Annotated[HttpPath, Field(alias="with")]


class RuleAction(BaseModel):
    """What a rule does: exactly one of ``use``, ``redirect``, ``respond``, ``use_default``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    use: Name | None = None
    redirect: Url | None = None
    code: int | None = None
    respond: int | None = None
    body: Body | None = None
    use_default: bool | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        given = [kind for kind in RuleActionKind if getattr(self, kind.value) not in (None, False)]
        if len(given) != 1:
            names = " | ".join(kind.value for kind in RuleActionKind)
            raise ValueError(f"give exactly one action: {names}")
        kind = given[0]
        if self.code is not None and kind is not RuleActionKind.redirect:
            raise ValueError("code: only used with redirect (respond gives its own status)")
        if kind is RuleActionKind.redirect and self.code not in (None, *REDIRECT_CODES):
            raise ValueError(f"code: must be one of {', '.join(map(str, REDIRECT_CODES))}")
        if self.body is not None and kind is not RuleActionKind.respond:
            raise ValueError("body: only used with respond")
        if kind is RuleActionKind.respond:
            _respond_code(self.respond, self.body, "respond")
        return self

    @property
    def kind(self) -> RuleActionKind:
        return next(k for k in RuleActionKind if getattr(self, k.value) not in (None, False))

    @property
    def redirect_code(self) -> int:
        return self.code if self.code is not None else 302


def _respond_code(code: int | None, body: str | None, field: str) -> None:
    low, high = RESPOND_CODES
    if isinstance(code, bool) or code is None or not low <= code <= high:
        raise ValueError(f"{field}: must be an HTTP status between {low} and {high}")
    if body and code in BODYLESS:
        raise ValueError(f"body: a {code} response carries no body")


class Rule(BaseModel):
    """A content rule: when ``match`` holds, ``action`` (and ``rewrite_path``) apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    match: Match
    action: RuleAction
    rewrite_path: RewritePath | None = None
    # the requests this rule matches, per client (model/limits.py): counted before its action
    limits: Limits | None = None

    @model_validator(mode="after")
    def _rewrite_needs_a_pool(self) -> Self:
        if self.rewrite_path is not None and self.action.kind.answers:
            raise ValueError(
                "rewrite_path: the load balancer answers this rule itself; a path rewrite "
                "is for a rule that uses a pool"
            )
        return self


class HeaderOperation(BaseModel):
    """One header operation: ``{set: Name, value: V}``, ``{add: Name, value: V}``,
    ``{delete: Name}`` or ``{replace: Name, regex: R, with: W}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    set: FieldName | None = None
    add: FieldName | None = None
    delete: FieldName | None = None
    replace: FieldName | None = None
    value: HeaderValue | None = None
    regex: PortableRegex | None = None
    replacement: Annotated[
        Annotated[SafeText, AfterValidator(_not_empty)] | None, Field(alias="with")
    ] = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        given = [kind for kind in HeaderOperationKind if getattr(self, kind.value) is not None]
        if len(given) != 1:
            names = " | ".join(kind.value for kind in HeaderOperationKind)
            raise ValueError(f"give exactly one operation: {names}")
        kind = given[0]
        if kind.takes_value != (self.value is not None):
            raise ValueError(
                f"value: {kind.value} needs one"
                if kind.takes_value
                else f"value: not used by {kind.value}"
            )
        if kind.takes_regex != (self.regex is not None and self.replacement is not None):
            if kind.takes_regex:
                raise ValueError(f"regex: {kind.value} needs regex and with")
            if self.regex is not None or self.replacement is not None:
                raise ValueError(f"regex: not used by {kind.value}")
        return self

    @property
    def kind(self) -> HeaderOperationKind:
        return next(k for k in HeaderOperationKind if getattr(self, k.value) is not None)

    @property
    def header(self) -> str:
        return str(getattr(self, self.kind.value))


class SorryServer(BaseModel):
    """The server that answers when no real server of the pool is up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: IPAddress
    port: Port


def page_file_name(name: str) -> str:
    """The file of page ``name`` in the page store's directory (store/pages.py writes it,
    HAProxy reads it); a page is HTML."""
    return f"{name}.html"


#: The media type of a page of the page store.
PAGE_MEDIA_TYPE = "text/html; charset=utf-8"


class NotAvailableResponse(BaseModel):
    """A response of the load balancer's own: ``code`` and a plain-text ``body``, or an HTML
    page of the page store (``body_file`` names it; store/pages.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: int = 503
    body: Body | None = "Service temporarily unavailable"
    body_file: Name | None = None

    @model_validator(mode="before")
    @classmethod
    def _page_has_no_default_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("body_file") is not None and "body" not in data:
            return {**data, "body": None}
        return data

    @model_validator(mode="after")
    def _status(self) -> Self:
        if self.body is not None and self.body_file is not None:
            raise ValueError("body: give body (text) or body_file (a page), not both")
        _respond_code(self.code, self.body or self.body_file, "code")
        return self


class NotAvailable(BaseModel):
    """What clients get when no real server of the pool is up: exactly one choice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sorry_server: SorryServer | None = None
    respond: NotAvailableResponse | None = None
    redirect: Url | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        given = [v for v in (self.sorry_server, self.respond, self.redirect) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of sorry_server, respond or redirect")
        return self


class Timeouts(BaseModel):
    """Per-service timeouts in seconds (LoadMaster's defaults: idle 660, connect 5, server
    660, queue 30); a timeout left out keeps the load balancer's fixed setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idle: _bounded(1, 86400) | None = None  # type: ignore[valid-type]
    connect: _bounded(1, 3600) | None = None  # type: ignore[valid-type]
    server: _bounded(1, 86400) | None = None  # type: ignore[valid-type]
    queue: _bounded(1, 3600) | None = None  # type: ignore[valid-type]
