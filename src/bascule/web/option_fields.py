"""The service page's fields for the L7 options and the filtering of a service (issues 12, 13).

What a service does besides spreading connections: its timeouts and request log, its path
rewrite, what clients get when no real server is up (``not_available``), who may reach it
(``access``), its ``limits``, ``cache``, ``compression`` and ``authentication``. Each is a
group of the document (model/rules.py, filtering.py, limits.py, caching.py,
authentication.py) edited as a whole: ``group_changes`` turns the posted fields of a group into
the group's value (null when nothing is asked), and the page's edit replaces the stored group
by it (``replaced_groups``), so a choice left (a sorry server replaced by a page) leaves
nothing behind.

The limits and cache groups are built for a field-name prefix (``limits_fields("limits")``),
so the same inputs can be put on any form that edits an object with such a group (a rule's
``rules[0].limits``, a sub-service's ``cache``): the template prints them like every other
section (``macros.html``'s ``section``), ``applies`` judges them by the group's own name
wherever it sits, a switch named ``<prefix>.enabled`` shows its group's settings
(``FormContext.on``), and ``limits_value`` / ``switched`` make the posted group the value the
document takes.

A group that is either there or not (cache, compression, authentication) has a switch
(``<group>.enabled``, the WUI's own name, never stored): its settings show when it is on.
Which fields show follows the model's rules: HTTP things on an l7 http service only, the
per-client request rate and the limited client's response on l7 only
(``FormContext.reads_http``, ``applies``).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from typing import Any

from bascule.model.caching import Cache, Compression, CompressionAlgorithm
from bascule.model.limits import RESPONSE_CODES
from bascule.web.forms import Field, FormErrors, choices

Section = tuple[str, str, tuple[Field, ...]]  # (id, title, fields), as fields.Section

#: The switch of a group that is there or not.
ENABLED = "enabled"


class NotAvailableKind(enum.StrEnum):
    """The choices of ``not_available`` (model/rules.py ``NotAvailable``), one at a time."""

    sorry_server = "sorry_server"
    respond = "respond"
    redirect = "redirect"


NOT_AVAILABLE_KIND = "not_available.kind"

# -- advanced properties ------------------------------------------------------------------------

REQUEST_LOG = Field(
    name="request_log",
    label="Request log",
    kind="checkbox",
    help="Log every request (http) or connection of the service (bascule logs).",
)
TIMEOUTS = (
    Field(name="timeouts.idle", label="Idle timeout (seconds)", kind="number", optional=True,
          help="Empty: the load balancer's setting (LoadMaster's default: 660)."),
    Field(name="timeouts.connect", label="Connect timeout (seconds)", kind="number",
          optional=True, help="Empty: 5."),
    Field(name="timeouts.server", label="Server timeout (seconds)", kind="number",
          optional=True, help="Empty: 660."),
    Field(name="timeouts.queue", label="Queue timeout (seconds)", kind="number", optional=True,
          help="Empty: 30."),
)  # fmt: skip
REWRITE_PATH = (
    Field(
        name="rewrite_path.regex",
        label="Rewrite path: regex",
        optional=True,
        help="Every request's path where it matches, e.g. ^/old/(.*)",
    ),
    Field(
        name="rewrite_path.with",
        label="Rewrite path: with",
        optional=True,
        help="\\1 is the first group, e.g. /new/\\1",
    ),
)
ADVANCED_OPTIONS = (REQUEST_LOG, *TIMEOUTS, *REWRITE_PATH)

# -- when no real server is up -------------------------------------------------------------------

NOT_AVAILABLE = (
    Field(
        name=NOT_AVAILABLE_KIND,
        label="When no real server is up",
        kind="select",
        choices=choices(NotAvailableKind, default="none: 503 from the load balancer (l4: none)"),
        optional=True,
        help="sorry server: another server answers; respond: a status and a text or a page "
        "of the page store; redirect: the clients go elsewhere.",
    ),
    Field(name="not_available.sorry_server.address", label="Sorry server address"),
    Field(name="not_available.sorry_server.port", label="Sorry server port", kind="number"),
    Field(name="not_available.respond.code", label="Status code", kind="number",
          help="200 to 599, e.g. 503"),
    Field(name="not_available.respond.body_file", label="Page (page store)", kind="select",
          optional=True),
    Field(name="not_available.respond.body", label="or a text body", optional=True,
          help="Used when no page is chosen."),
    Field(name="not_available.redirect", label="Redirect to", help="https://status.example.com/"),
)  # fmt: skip

# -- filtering ----------------------------------------------------------------------------------

ACCESS = (
    Field(
        name="access.allow",
        label="Allow only the clients of",
        kind="multi",
        help="The access lists of the configuration (bascule acl). None ticked: everyone.",
    ),
    Field(
        name="access.deny",
        label="Drop the clients of",
        kind="multi",
        help="Deny wins over allow.",
    ),
)


def limits_fields(prefix: str) -> tuple[Field, ...]:
    """The inputs of a ``limits`` group at ``prefix`` (``limits``, or a rule's
    ``rules[0].limits`` once the model has one)."""
    return (
        Field(name=f"{prefix}.max_connections", label="Connections at once", kind="number",
              optional=True, help="For the whole service. Empty: no limit."),
        Field(name=f"{prefix}.connections_per_second", label="New connections per second",
              kind="number", optional=True),
        Field(name=f"{prefix}.per_client.connections", label="Per client: connections at once",
              kind="number", optional=True, help="One client is one source address."),
        Field(name=f"{prefix}.per_client.connections_per_second",
              label="Per client: new connections per second", kind="number", optional=True),
        Field(name=f"{prefix}.per_client.requests_per_second",
              label="Per client: HTTP requests per second", kind="number", optional=True),
        Field(name=f"{prefix}.response.code", label="A limited client gets", kind="select",
              choices=tuple((str(code), str(code)) for code in RESPONSE_CODES),
              help="429 too many requests, or 503."),
        Field(name=f"{prefix}.response.retry_after", label="Retry-After (seconds)",
              kind="number", optional=True),
        Field(name=f"{prefix}.exempt", label="Never limit the clients of", kind="multi"),
    )  # fmt: skip


def cache_fields(prefix: str) -> tuple[Field, ...]:
    """The inputs of a ``cache`` group at ``prefix``: its switch and its settings."""
    return (
        Field(name=f"{prefix}.{ENABLED}", label="Cache responses", kind="checkbox",
              help="What the real servers allow (Cache-Control, Expires) is kept in memory."),
        Field(name=f"{prefix}.size_mb", label="Cache size (MB)", kind="number"),
        Field(name=f"{prefix}.max_object_kb", label="Largest object (KB)", kind="number",
              help="At most half of the cache."),
        Field(name=f"{prefix}.max_age", label="Longest keep (seconds)", kind="number"),
        Field(name=f"{prefix}.x_cache_header", label="X-Cache: HIT|MISS response header",
              kind="checkbox"),
    )  # fmt: skip


COMPRESSION = (
    Field(name=f"compression.{ENABLED}", label="Compress responses", kind="checkbox",
          help="For the clients that accept it, when the response is not encoded yet."),
    Field(name="compression.types", label="Media types", kind="list",
          help="Comma-separated, e.g. text/html, text/css, application/json"),
    Field(name="compression.algorithms", label="Algorithms", kind="multi",
          choices=choices(CompressionAlgorithm)),
)  # fmt: skip
AUTHENTICATION = (
    Field(name=f"authentication.{ENABLED}", label="Ask for a user and password (HTTP basic)",
          kind="checkbox"),
    Field(name="authentication.realm", label="Realm", help="What the browser's prompt shows."),
    Field(name="authentication.users", label="Users", kind="multi",
          help="Users of the HTTP user store (HTTP users page)."),
)  # fmt: skip

LIMITS = limits_fields("limits")
CACHE = cache_fields("cache")
#: A sub-service's limits: the requests that reach its pool (model/limits.py refuses the
#: connection limits there: connections belong to the service).
POOL_LIMITS = tuple(
    f
    for f in LIMITS
    if f.name.removeprefix("limits.")
    in ("per_client.requests_per_second", "response.code", "response.retry_after", "exempt")
)
#: The option sections of a sub-service's tab.
POOL_SECTIONS: tuple[Section, ...] = (
    ("limits", "Limits", POOL_LIMITS),
    ("cache", "Cache", CACHE),
)

OPTION_SECTIONS: tuple[Section, ...] = (
    ("not-available", "When no real server is up", NOT_AVAILABLE),
    ("access", "Access", ACCESS),
    ("limits", "Limits", LIMITS),
    ("cache", "Cache", CACHE),
    ("compression", "Compression", COMPRESSION),
    ("authentication", "Authentication", AUTHENTICATION),
)
#: The choices a change of which shows other fields (and every switch: ``is_switch``).
OPTION_CONTEXT_FIELDS = frozenset({NOT_AVAILABLE_KIND})
#: The fields whose choices are names of a store or of the document, by their source (the
#: page gives ``fields.shown_sections`` the names each source holds).
NAMED_CHOICES = {
    "access.allow": "access_lists",
    "access.deny": "access_lists",
    "limits.exempt": "access_lists",
    "authentication.users": "http_users",
    "not_available.respond.body_file": "pages",
}
#: The groups the page replaces as a whole when it posts one of their fields.
GROUPS = (
    "timeouts", "rewrite_path", "not_available", "access", "limits", "cache", "compression",
    "authentication",
)  # fmt: skip
#: Groups that read HTTP: an l7 service of type http only (model/content.py, caching.py...).
_HTTP_GROUPS = frozenset({"rewrite_path", "cache", "compression", "authentication"})
#: Groups of l7 services (the engine that runs them is the proxy).
_L7_GROUPS = frozenset({"timeouts", "request_log"})
_ALL_GROUPS = frozenset({*GROUPS, "request_log"})
#: Settings of a limits group that only an l7 http service honours.
_HTTP_LIMITS = frozenset({"per_client.requests_per_second", "response.code",
                          "response.retry_after"})  # fmt: skip


def applies(
    name: str, *, l7: bool, reads_http: bool, on: frozenset[str], not_available: str
) -> bool | None:
    """Whether the option field ``name`` applies, or None when it is not one of them.

    ``on``: the groups whose switch is on; ``not_available``: the chosen NotAvailableKind
    (empty: none)."""
    parts = name.split(".")
    at = next((i for i, part in enumerate(parts) if part in _ALL_GROUPS), None)
    if at is None:
        return None
    group, setting = parts[at], ".".join(parts[at + 1 :])
    if group in _HTTP_GROUPS:
        if not reads_http:
            return False
        return setting == ENABLED or group == "rewrite_path" or ".".join(parts[: at + 1]) in on
    if group in _L7_GROUPS:
        return l7
    if group == "limits":
        return reads_http or setting not in _HTTP_LIMITS
    if group == "not_available":
        return _not_available_applies(name, reads_http=reads_http, chosen=not_available)
    if group == "access":
        return True
    return None


def _not_available_applies(name: str, *, reads_http: bool, chosen: str) -> bool:
    if name == NOT_AVAILABLE_KIND:
        return True
    kind = name.split(".")[1]  # the service's own (not_available.<kind>...)
    return kind == chosen and (reads_http or kind == NotAvailableKind.sorry_server)


def not_available_choices(reads_http: bool) -> tuple[tuple[str, str], ...]:
    """The choices of ``not_available.kind``: respond and redirect answer HTTP."""
    field = NOT_AVAILABLE[0]
    if reads_http:
        return field.choices
    return tuple(c for c in field.choices if c[0] in ("", NotAvailableKind.sorry_server))


# -- stored values to the form and back ---------------------------------------------------------


def option_values(stored: Mapping[str, Any]) -> dict[str, Any]:
    """What the form shows of a stored service's options besides the plain paths
    (``forms.values``): the switches, the chosen not-available kind, the request log (on
    unless false) and the path rewrite's ``with`` (stored as ``replacement``)."""
    shown: dict[str, Any] = {
        f"{group}.{ENABLED}": stored.get(group) is not None
        for group in ("cache", "compression", "authentication")
    }
    shown[REQUEST_LOG.name] = stored.get("request_log") is not False
    available = _mapping(stored.get("not_available"))
    shown[NOT_AVAILABLE_KIND] = next(
        (kind.value for kind in NotAvailableKind if available.get(kind.value) is not None), ""
    )
    rewrite = _mapping(stored.get("rewrite_path"))
    shown["rewrite_path.with"] = rewrite.get("with", rewrite.get("replacement"))
    return shown


def with_option_defaults(stored: Mapping[str, Any]) -> dict[str, Any]:
    """``stored`` with the model's defaults for the groups it does not have: what a group
    shows when it is switched on."""
    defaults = {
        "cache": Cache().model_dump(mode="json"),
        "compression": Compression().model_dump(mode="json"),
        "authentication": {"realm": "Restricted", "users": []},
        "limits": {"response": {"code": 429}},
    }
    return {**defaults, **{key: value for key, value in stored.items() if value is not None}}


def group_changes(changes: dict[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """The posted ``changes`` with each option group as the value the document takes: a group
    switched off, or with nothing asked, is null; the not-available choice becomes the
    chosen one's section; a request log left on stays as stored (on by default)."""
    for group in ("cache", "compression", "authentication"):
        if isinstance(changes.get(group), dict):
            changes[group] = switched(changes[group])
    if isinstance(changes.get("not_available"), dict):
        changes["not_available"] = _not_available(changes["not_available"])
    if isinstance(changes.get("limits"), dict):
        changes["limits"] = limits_value(changes["limits"])
    for group in ("timeouts", "rewrite_path", "access"):
        if isinstance(changes.get(group), dict) and not _asked(changes[group]):
            changes[group] = None
    if changes.get(REQUEST_LOG.name) is True and stored.get(REQUEST_LOG.name) is not True:
        changes[REQUEST_LOG.name] = None  # on: the default, not a change
    return changes


def is_switch(name: str) -> bool:
    """Whether ``name`` is the switch of a group (``cache.enabled``, ``rules[0].cache.enabled``):
    its change shows or hides the group's settings."""
    return name.endswith(f".{ENABLED}")


def switched(posted: Mapping[str, Any]) -> dict[str, Any] | None:
    """A posted group with a switch as the document takes it: null when switched off."""
    group = dict(posted)
    return group if group.pop(ENABLED, False) else None


def limits_value(posted: Mapping[str, Any]) -> dict[str, Any] | None:
    """A posted limits group as the document takes it: null when no limit is asked."""
    limits = dict(posted)
    per_client = limits.get("per_client")
    if isinstance(per_client, dict) and not _asked(per_client):
        limits["per_client"] = None
    response = limits.get("response")
    if isinstance(response, dict):
        code = response.get("code")
        if code is None:
            del limits["response"]  # not shown (l4): the model's default
        elif isinstance(code, str) and code.isdigit():
            limits["response"] = {**response, "code": int(code)}  # a select posts text
    asks = {k: v for k, v in limits.items() if k not in ("response", "exempt")}
    return limits if _asked(asks) else None


def _not_available(posted: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = posted.get("kind")
    if kind not in set(NotAvailableKind):
        return None
    chosen = posted.get(str(kind))
    if kind == NotAvailableKind.respond and isinstance(chosen, dict):
        chosen = {k: v for k, v in chosen.items() if v is not None}
        if chosen.get("body_file"):
            chosen["body"] = None  # a page, not the default text
    return {str(kind): chosen}


def _asked(group: Mapping[str, Any]) -> bool:
    """Whether any value of ``group`` (nested) is given."""
    return any(
        _asked(value) if isinstance(value, Mapping) else value not in (None, "", [])
        for value in group.values()
    )


#: Where the model's errors of a whole group go: beside the group's first input.
_GROUP_INPUTS = {
    "timeouts": TIMEOUTS[0].name,
    "rewrite_path": REWRITE_PATH[0].name,
    "not_available": NOT_AVAILABLE_KIND,
    "access": ACCESS[0].name,
    "limits": LIMITS[0].name,
    "cache": CACHE[0].name,
    "compression": COMPRESSION[0].name,
    "authentication": AUTHENTICATION[0].name,
}
#: The names ``forms.errors_for`` may give a group's own errors.
GROUP_ERROR_NAMES = tuple(_GROUP_INPUTS)


def group_errors(errors: FormErrors, shown_names: Collection[str]) -> FormErrors:
    """The errors of a whole group (``limits: needs connection tracking...``) beside its
    first input when the form shows it, above the form (naming the group) otherwise."""
    fields = dict(errors.fields)
    general = list(errors.general)
    for group, first in _GROUP_INPUTS.items():
        message = fields.pop(group, None)
        if message is None:
            continue
        if first in shown_names:
            fields[first] = f"{fields[first]}; {message}" if first in fields else message
        else:
            general.append(f"{group}: {message}")
    return FormErrors(fields=fields, general=tuple(general))


def replaced_groups(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The groups of ``changes`` that replace the stored ones whole: an edit first sets
    these to null, then merges ``changes`` (edits.update_virtual_service merges mappings)."""
    return {group: None for group in GROUPS if group in changes}


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
