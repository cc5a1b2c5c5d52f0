"""The form fields of a virtual service and of a real server, section by section.

Named by their model path (DESIGN.md's document), labelled in words, with choices taken from
the model's enums so a new scheduler or check type appears in the WUI by itself. The add form
shows ``ESSENTIAL`` and folds the rest (``MORE``) in a collapsed section: every other field
has the model's default.

The service page's sections are LoadMaster's (basic properties, standard options, health
check, advanced properties). Only the fields that apply to the chosen mode, type, persistence
method and check type are shown: ``FormContext`` reads those choices from the form's values
and ``applicable`` decides, from the model's facts (``PersistenceMethod.settings``,
``CheckType.settings``, the modes of each option), pure. A field left out is not posted, so
an edit keeps its stored value.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from bascule.model import (
    CheckType,
    Forwarding,
    HttpMethod,
    Mode,
    PersistenceFallback,
    PersistenceMethod,
    Protocol,
    ProxyProtocol,
    RealServerState,
    Scheduler,
    ServiceType,
)
from bascule.model.capabilities import Forwarded, TlsUse
from bascule.model.tls import CipherSet, ClientCertificate, TlsVersion, VerifyServer
from bascule.web.forms import Field, choices
from bascule.web.option_fields import (
    ADVANCED_OPTIONS,
    NAMED_CHOICES,
    NOT_AVAILABLE_KIND,
    OPTION_CONTEXT_FIELDS,
    OPTION_SECTIONS,
    applies,
    is_switch,
    not_available_choices,
)

Section = tuple[str, str, tuple[Field, ...]]  # (id, title, fields)

NAME = Field(
    name="name",
    label="Name",
    help="Letters a-z, digits and dashes. Left empty: made from the address and port.",
)
ADDRESS = Field(name="address", label="Virtual IP address", help="IPv4 or IPv6, e.g. 198.18.0.100")
PORT = Field(name="port", label="Port", kind="number")
PROTOCOL = Field(name="protocol", label="Protocol", kind="select", choices=choices(Protocol))
TYPE = Field(
    name="type",
    label="Service type",
    kind="select",
    choices=choices(ServiceType),
    help="auto: Bascule probes the real servers (or the port) and picks http or generic.",
)

MODE = Field(
    name="mode",
    label="Mode",
    kind="select",
    choices=choices(Mode),
    help="l7: proxy (HAProxy); l4: kernel forwarding (nftables).",
)
CHECK_TYPE = Field(name="check.type", label="Check", kind="select", choices=choices(CheckType))

BASIC = (
    NAME,
    ADDRESS,
    Field(
        name="address6",
        label="IPv6 address (dual-stack)",
        optional=True,
        help="Dual-stack: the IPv6 VIP of a service whose address is IPv4. Empty: none.",
    ),
    PORT,
    PROTOCOL,
    TYPE,
    MODE,
    Field(name="enabled", label="Enabled", kind="checkbox"),
    Field(
        name="extra_ports",
        label="Extra ports",
        kind="list",
        help="More ports on the same address, comma-separated: 8080, 9000-9010",
    ),
)

SCHEDULER = Field(
    name="scheduler", label="Scheduling method", kind="select", choices=choices(Scheduler)
)
SCHEDULING = (SCHEDULER,)

PERSISTENCE = (
    Field(
        name="persistence.method",
        label="Persistence",
        kind="select",
        choices=choices(PersistenceMethod),
    ),
    Field(name="persistence.timeout", label="Timeout (seconds)", kind="number"),
    Field(
        name="persistence.fallback",
        label="Fallback",
        kind="select",
        choices=choices(PersistenceFallback),
    ),
    Field(name="persistence.cookie", label="Cookie name"),
    Field(name="persistence.header", label="Header name"),
    Field(name="persistence.query_item", label="Query item"),
    Field(name="persistence.source_mask", label="Source mask (IPv4 prefix)", kind="number"),
    Field(name="persistence.source_mask6", label="Source mask (IPv6 prefix)", kind="number"),
)

CHECK = (
    CHECK_TYPE,
    Field(name="check.interval", label="Interval (seconds)", kind="number"),
    Field(name="check.timeout", label="Timeout (seconds)", kind="number"),
    Field(name="check.rise", label="Successes before up", kind="number"),
    Field(name="check.fall", label="Failures before down", kind="number"),
    Field(
        name="check.port",
        label="Port",
        kind="number",
        optional=True,
        help="Empty: the real server's port.",
    ),
    Field(name="check.method", label="HTTP method", kind="select", choices=choices(HttpMethod)),
    Field(name="check.path", label="HTTP path"),
    Field(name="check.host", label="Host header", optional=True, help="Empty: the VIP."),
    Field(name="check.expect_status", label="Expected status codes"),
    Field(
        name="check.expect_body",
        label="Expected body (regex)",
        optional=True,
    ),
    Field(name="check.post_data", label="POST data", optional=True),
    Field(name="check.send_hex", label="Send (hex)", optional=True),
    Field(name="check.expect_hex", label="Expect (hex)", optional=True),
)

TRANSPARENT = Field(
    name="transparent",
    label="L7 transparency (real servers see the client's address)",
    kind="checkbox",
    help="Only when the real servers route back through the load balancer.",
)
L4_FORWARDING = Field(
    name="forwarding",
    label="Forwarding method",
    kind="select",
    choices=choices(Forwarding),
    help="nat, or dsr (direct server return).",
)

ADVANCED = (
    Field(
        name="interface",
        label="Interface",
        optional=True,
        help="Where the VIP is added; empty: chosen by its subnet.",
    ),
    Field(
        name="forwarded",
        label="Client address header",
        kind="select",
        choices=choices(Forwarded),
        help="How the real servers learn the client's address (via and both: http only).",
    ),
    Field(
        name="proxy_protocol",
        label="PROXY protocol to the real servers",
        kind="select",
        choices=choices(ProxyProtocol),
    ),
    Field(
        name="accept_proxy",
        label="Accept the PROXY protocol from a load balancer in front",
        kind="checkbox",
    ),
    Field(
        name="slow_start",
        label="Slow start (seconds)",
        kind="number",
        help="A returning server reaches its weight over this time; 0: at once.",
    ),
    Field(
        name="drain_time",
        label="Drain time (seconds)",
        kind="number",
        help="A drained server's connections are closed after this; 0: never.",
    ),
    Field(
        name="subnet_originating",
        label="Subnet originating (connections come from the load balancer)",
        kind="checkbox",
    ),
    Field(
        name="drop_on_failure",
        label="Drop connections when a real server fails",
        kind="checkbox",
    ),
)

TLS_CERTIFICATES = Field(
    name="tls.certificates",
    label="SSL offload: certificates",
    kind="list",
    help="Names in the certificate store, comma-separated (the first is the default); "
    "empty: no SSL offload.",
)
SSL = (
    TLS_CERTIFICATES,
    Field(name="tls.cipher_set", label="Cipher set", kind="select", choices=choices(CipherSet)),
    Field(
        name="tls.min_version",
        label="Lowest TLS version",
        kind="select",
        choices=choices(TlsVersion, default="the cipher set's"),
        optional=True,
    ),
    Field(
        name="tls.max_version", label="Highest TLS version", kind="select",
        choices=choices(TlsVersion),
    ),
    Field(name="tls.hsts", label="HSTS max-age (seconds)", kind="number", help="0: no HSTS."),
    Field(name="tls.redirect_http", label="Redirect HTTP (port 80) to HTTPS", kind="checkbox"),
    Field(
        name="tls.client_certificate",
        label="Client certificates",
        kind="select",
        choices=choices(ClientCertificate),
    ),
    Field(name="tls.client_ca", label="Client CA bundle", optional=True),
    Field(name="tls.reencrypt", label="Re-encrypt to the real servers", kind="checkbox"),
    Field(
        name="tls.verify_server",
        label="Verify the real servers' certificates",
        kind="select",
        choices=choices(VerifyServer),
    ),
    Field(name="tls.server_ca", label="Real servers' CA bundle", optional=True),
    Field(name="tls.server_sni", label="SNI sent to the real servers"),
)  # fmt: skip

_FIRST_SECTIONS: tuple[Section, ...] = (
    ("basic", "Basic properties", BASIC),
    ("standard", "Standard options", (*SCHEDULING, L4_FORWARDING, TRANSPARENT, *PERSISTENCE)),
    ("ssl", "SSL properties", SSL),
    ("check", "Health check", CHECK),
    ("advanced", "Advanced properties", ADVANCED),
)
# The service page adds the L7 options and the filtering (option_fields.py); the header
# operations are rows of their own (header_rows.py).
SECTIONS: tuple[Section, ...] = (
    *_FIRST_SECTIONS[:-1],
    ("advanced", "Advanced properties", (*ADVANCED, *ADVANCED_OPTIONS)),
    *OPTION_SECTIONS,
)
SERVICE_FIELDS = tuple(field for _, _, fields in SECTIONS for field in fields)

# The add form: what LoadMaster asks first; the rest folded under "More options" (the options
# and filtering are set on the service's page, once it exists). Mode and check type default
# to what the protocol and the (detected) type call for, so they start on an empty
# "automatic" choice that leaves them out of the document.
ESSENTIAL = (ADDRESS, PORT, PROTOCOL, TYPE, NAME)
_AUTOMATIC = {
    MODE: Field(
        name="mode",
        label="Mode",
        kind="select",
        choices=choices(Mode, default="automatic: l7 for tcp, l4 for udp"),
        help=MODE.help,
    ),
    CHECK_TYPE: Field(
        name="check.type",
        label="Check",
        kind="select",
        choices=choices(CheckType, default="automatic: from the service type"),
    ),
}
MORE: tuple[Section, ...] = tuple(
    (
        key,
        "More basic properties" if key == "basic" else title,
        tuple(_AUTOMATIC.get(f, f) for f in fields if f not in ESSENTIAL),
    )
    for key, title, fields in _FIRST_SECTIONS
)
NEW_SERVICE_FIELDS = (*ESSENTIAL, *(f for _, _, fields in MORE for f in fields))

REAL_SERVER_FIELDS = (
    Field(name="address", label="Address", help="IPv4 or IPv6 of the real server"),
    Field(name="port", label="Port", kind="number"),
    Field(
        name="forwarding",
        label="Forwarding method",
        kind="select",
        choices=choices(Forwarding, default="as the virtual service"),
        optional=True,
        help="l4 services only.",
    ),
    Field(name="weight", label="Weight", kind="number", help="1 to 65535; default 1000."),
)
REAL_SERVER_MORE = (
    Field(name="state", label="State", kind="select", choices=choices(RealServerState)),
    Field(name="max_connections", label="Max connections", kind="number", help="0 = unlimited."),
    Field(
        name="critical",
        label="Critical (the virtual service is down while this one is down)",
        kind="checkbox",
    ),
)
ALL_REAL_SERVER_FIELDS = (*REAL_SERVER_FIELDS, *REAL_SERVER_MORE)


# -- which fields apply -----------------------------------------------------------------------

#: The options of each mode (the model refuses the others' non-default values on it).
L4_ONLY_FIELDS = frozenset({"forwarding", "subnet_originating", "drop_on_failure"})
L7_ONLY_FIELDS = frozenset(
    {"transparent", "forwarded", "proxy_protocol", "accept_proxy", "slow_start", "drain_time"}
)
#: The choices a change of which shows other fields (the page swaps its sections then).
CONTEXT_FIELDS = frozenset(
    {
        "mode", "protocol", "type", "scheduler", "persistence.method", "check.type",
        "tls.certificates", "tls.client_certificate", "tls.reencrypt",
    }
) | OPTION_CONTEXT_FIELDS  # fmt: skip
#: The SSL settings that apply only with client certificates, or with re-encryption.
_CLIENT_CERTIFICATE_FIELDS = frozenset({"tls.client_ca"})
_REENCRYPT_FIELDS = frozenset({"tls.verify_server", "tls.server_ca", "tls.server_sni"})

E = TypeVar("E", bound=enum.Enum)


def _member(kind: type[E], value: Any) -> E | None:
    try:
        return kind(value)
    except ValueError:
        return None


@dataclass(frozen=True, kw_only=True)
class FormContext:
    """The choices of a service form that decide which fields apply; None: not chosen yet
    (the add form's automatic mode and check, or a sub-service's "as the service")."""

    mode: Mode
    type: ServiceType | None
    persistence: PersistenceMethod | None
    check: CheckType | None
    tls: bool = False  # SSL offload: certificates named
    client_certificate: bool = False  # clients asked for certificates
    reencrypt: bool = False  # TLS again towards the real servers
    on: frozenset[str] = frozenset()  # the groups switched on, by path (cache, rules[0].cache)
    not_available: str = ""  # the chosen not_available kind, "" for none

    @property
    def reads_http(self) -> bool:
        """An l7 service of a type whose requests the proxy reads (http)."""
        return self.mode is Mode.l7 and self.type is not None and self.type.reads_http

    @classmethod
    def of(
        cls, shown: Mapping[str, Any], *, inherited: Mapping[str, Any] | None = None
    ) -> FormContext:
        """Read the choices from a form's values; a sub-service's mode, protocol and type
        are ``inherited`` from its service's values. An empty persistence method or check
        type (automatic, or the service's) shows none of their settings."""
        base = inherited or {}

        def pick(name: str) -> Any:
            value = shown.get(name)
            return base.get(name) if value in (None, "") else value

        mode = _member(Mode, pick("mode"))
        if mode is None:  # automatic: what the model's default is for the protocol
            mode = Mode.l4 if pick("protocol") == Protocol.udp.value else Mode.l7
        service_type = _member(ServiceType, pick("type"))
        check = _member(CheckType, shown.get("check.type"))
        if check is None and inherited is None:
            # a service's automatic check: the one its type gets (http for http)
            check = CheckType.http if service_type is ServiceType.http else CheckType.tcp
        return cls(
            mode=mode,
            type=service_type,
            persistence=_member(PersistenceMethod, shown.get("persistence.method")),
            check=check,
            tls=bool(str(shown.get("tls.certificates") or "").strip(" ,")),
            client_certificate=shown.get("tls.client_certificate") not in (None, "", "none"),
            reencrypt=shown.get("tls.reencrypt") not in (None, False, "", "false"),
            on=frozenset(
                name.rpartition(".")[0]
                for name, value in shown.items()
                if is_switch(name) and value not in (None, False, "", "false")
            ),
            not_available=str(shown.get(NOT_AVAILABLE_KIND) or ""),
        )


def applicable(field: Field, context: FormContext) -> bool:
    """Whether ``field`` applies to the service the form describes."""
    option = applies(
        field.name,
        l7=context.mode is Mode.l7,
        reads_http=context.reads_http,
        on=context.on,
        not_available=context.not_available,
    )
    if option is not None:
        return option
    group, _, setting = field.name.rpartition(".")
    if field.name in L4_ONLY_FIELDS:
        return context.mode is Mode.l4
    if field.name in L7_ONLY_FIELDS:
        return context.mode is Mode.l7
    if group == "persistence" and setting != "method":
        return context.persistence is not None and setting in context.persistence.settings
    if group == "check" and setting != "type":
        return context.check is not None and setting in context.check.settings
    if group == "tls":
        return _tls_applies(field.name, context)
    return True


def _tls_applies(name: str, context: FormContext) -> bool:
    """SSL offload is for l7 services of a type that takes it; its settings show once a
    certificate is named, the client CA with client certificates, the server side with
    re-encryption."""
    takes_tls = context.mode is Mode.l7 and (
        context.type is not None and context.type.tls is not TlsUse.refused
    )
    if not takes_tls:
        return False
    if name == TLS_CERTIFICATES.name:
        return True
    if not context.tls:
        return False
    if name in _CLIENT_CERTIFICATE_FIELDS:
        return context.client_certificate
    if name in _REENCRYPT_FIELDS:
        return context.reencrypt
    return True


def without_empty_tls(changes: dict[str, Any]) -> dict[str, Any]:
    """A form's changes where no certificate is named: no SSL offload (``tls: null``), not
    a ``tls`` section without certificates."""
    tls = changes.get("tls")
    if isinstance(tls, dict) and not tls.get("certificates"):
        changes["tls"] = None
    return changes


def allowed_choices(field: Field, context: FormContext) -> tuple[tuple[str, str], ...]:
    """The choices of a select that the mode (and the type, once known) allow."""
    if field.name == NOT_AVAILABLE_KIND:
        return not_available_choices(context.reads_http)
    kinds: dict[str, type[Scheduler] | type[PersistenceMethod] | type[CheckType]] = {
        "scheduler": Scheduler,
        "persistence.method": PersistenceMethod,
        "check.type": CheckType,
    }
    kind = kinds.get(field.name)
    if kind is None:
        return field.choices

    def allowed(value: str) -> bool:
        member = _member(kind, value)
        if member is None:  # the empty "automatic" or "as the service" choice
            return True
        if context.mode not in member.modes:
            return False
        needs = getattr(member, "needs_type", None)
        return needs is None or context.type in (None, ServiceType.auto, needs)

    return tuple(choice for choice in field.choices if allowed(choice[0]))


@dataclass(frozen=True, kw_only=True)
class ShownField:
    """A field as the template prints it: its choices narrowed to what applies."""

    field: Field
    choices: tuple[tuple[str, str], ...]
    context: bool  # a change of it swaps the sections in place


def shown_sections(
    sections: tuple[Section, ...],
    context: FormContext,
    named: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[tuple[str, str, tuple[ShownField, ...]], ...]:
    """``sections`` with only the fields that apply to ``context`` (an empty one dropped).

    ``named``: the names a field of ``NAMED_CHOICES`` offers, by their source
    (``access_lists``, ``http_users``, ``pages``)."""
    result = []
    for key, title, fields in sections:
        shown = tuple(
            ShownField(
                field=f,
                choices=_named_choices(f, named or {}) or allowed_choices(f, context),
                context=f.name in CONTEXT_FIELDS or is_switch(f.name),
            )
            for f in fields
            if applicable(f, context)
        )
        if shown:
            result.append((key, title, shown))
    return tuple(result)


def _named_choices(
    field: Field, named: Mapping[str, tuple[str, ...]]
) -> tuple[tuple[str, str], ...]:
    """The names a field offers from the store or the document (none for other fields); a
    select of them (the page of a response) starts with an empty choice: none, the text."""
    source = NAMED_CHOICES.get(field.name)
    if source is None:
        return ()
    offered = tuple((name, name) for name in named.get(source, ()))
    return offered if field.kind == "multi" else (("", "none: the text below"), *offered)


# -- a sub-service's own pool settings ------------------------------------------------------

_SERVICE_S = "as the service"
SUB_SERVICE_SECTIONS: tuple[Section, ...] = (
    (
        "standard",
        "Standard options",
        (
            Field(
                name="scheduler",
                label=SCHEDULER.label,
                kind="select",
                choices=choices(Scheduler, default=_SERVICE_S),
                optional=True,
            ),
            Field(
                name="persistence.method",
                label="Persistence",
                kind="select",
                choices=choices(PersistenceMethod, default=_SERVICE_S),
                optional=True,
            ),
            *PERSISTENCE[1:],
        ),
    ),
    (
        "check",
        "Health check",
        (
            Field(
                name="check.type",
                label="Check",
                kind="select",
                choices=choices(CheckType, default=_SERVICE_S),
                optional=True,
            ),
            *CHECK[1:],
        ),
    ),
)
SUB_SERVICE_FIELDS = tuple(field for _, _, fields in SUB_SERVICE_SECTIONS for field in fields)
