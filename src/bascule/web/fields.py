"""The form fields of a virtual service and of a real server, section by section.

Named by their model path (DESIGN.md's document), labelled in words, with choices taken from
the model's enums so a new scheduler or check type appears in the WUI by itself. The add form
shows ``ESSENTIAL`` and folds the rest (``MORE``) in a collapsed section: every other field
has the model's default.
"""

from __future__ import annotations

from bascule.model import (
    CheckType,
    Forwarding,
    HttpMethod,
    Mode,
    PersistenceFallback,
    PersistenceMethod,
    Protocol,
    RealServerState,
    Scheduler,
    ServiceType,
)
from bascule.web.forms import Field, choices

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

SCHEDULING = (
    Field(name="scheduler", label="Scheduling method", kind="select", choices=choices(Scheduler)),
)

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

OPTIONS = (
    Field(
        name="forwarding",
        label="L4 forwarding",
        kind="select",
        choices=choices(Forwarding),
        help="l4 only: nat, or dsr (direct server return).",
    ),
    Field(
        name="interface",
        label="Interface",
        optional=True,
        help="Where the VIP is added; empty: chosen by its subnet.",
    ),
    Field(
        name="transparent",
        label="L7 transparency (real servers see the client's address)",
        kind="checkbox",
    ),
    Field(
        name="subnet_originating",
        label="L4 subnet originating (connections come from the load balancer)",
        kind="checkbox",
    ),
    Field(
        name="drop_on_failure",
        label="L4 drop connections when a real server fails",
        kind="checkbox",
    ),
)

SECTIONS: tuple[Section, ...] = (
    ("basic", "Basic properties", BASIC),
    ("scheduling", "Scheduling", SCHEDULING),
    ("persistence", "Persistence", PERSISTENCE),
    ("check", "Health check", CHECK),
    ("options", "L4 / L7 options", OPTIONS),
)
SERVICE_FIELDS = tuple(field for _, _, fields in SECTIONS for field in fields)

# The add form: what LoadMaster asks first; the rest folded under "More options". Mode and
# check type default to what the protocol and the (detected) type call for, so they start
# on an empty "automatic" choice that leaves them out of the document.
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
    for key, title, fields in SECTIONS
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
