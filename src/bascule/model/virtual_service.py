"""Virtual services: a VIP and port (plus extra ports) that clients connect to."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from bascule.model.authentication import Authentication
from bascule.model.caching import Cache, Compression
from bascule.model.capabilities import (
    CheckType,
    Forwarded,
    Mode,
    Protocol,
    ProxyProtocol,
    Scheduler,
    ServiceType,
    StartTls,
)
from bascule.model.check import HealthCheck
from bascule.model.filtering import Access
from bascule.model.limits import Limits
from bascule.model.persistence import Persistence
from bascule.model.real_server import Forwarding, RealServer
from bascule.model.rules import HeaderOperation, NotAvailable, RewritePath, Rule, Timeouts
from bascule.model.sub_service import SubService, pool_name
from bascule.model.tls import Tls
from bascule.model.types import HttpPath, IPAddress, Name, Port
from bascule.model.types import bounded as _bounded
from bascule.model.types import seconds as _seconds


@dataclass(frozen=True, kw_only=True)
class PortRange:
    """An inclusive port range; a single port has ``first == last``."""

    first: int
    last: int

    def overlaps(self, other: PortRange) -> bool:
        return self.first <= other.last and other.first <= self.last

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


#: The service type LoadMaster users type for HTTP with SSL offload: stored as http + tls.
HTTPS = "https"
HTTPS_PORT = 443

_RANGE = re.compile(r"^([0-9]{1,5})-([0-9]{1,5})$")
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")


def parse_port_spec(value: int | str) -> PortRange:
    """``8080`` or ``"9000-9010"`` as a PortRange; raise ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError('must be a port (1-65535) or a range like "9000-9010"')
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        port = int(value)
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} must be between 1 and 65535")
        return PortRange(first=port, last=port)
    match = _RANGE.match(value.strip())
    if not match:
        raise ValueError(f'{value!r} must be a port (1-65535) or a range like "9000-9010"')
    first, last = int(match[1]), int(match[2])
    if not (1 <= first <= 65535 and 1 <= last <= 65535):
        raise ValueError(f"range {value!r}: ports must be between 1 and 65535")
    if first > last:
        raise ValueError(f"range {value!r}: the first port must not be above the last")
    return PortRange(first=first, last=last)


def _no_booleans(values: Any) -> Any:
    # pydantic's lax int would turn `true` into port 1 before _port_specs could see it.
    if isinstance(values, list):
        for index, value in enumerate(values):
            if isinstance(value, bool):
                raise ValueError(f'[{index}]: must be a port (1-65535) or a range like "9000-9010"')
    return values


def _port_specs(values: list[int | str]) -> list[int | str]:
    normalised: list[int | str] = []
    for index, value in enumerate(values):
        try:
            spec = parse_port_spec(value)
        except ValueError as exc:
            raise ValueError(f"[{index}]: {exc}") from None
        normalised.append(spec.first if spec.first == spec.last else str(spec))
    return normalised


def _interface(value: str) -> str:
    if not _INTERFACE.fullmatch(value):
        raise ValueError("must be a network interface name such as eth0")
    return value


class Adaptive(BaseModel):
    """The real-server agent polled by the ``adaptive`` scheduler (LoadMaster-compatible)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpPath = "/load"
    port: Port = 80
    interval: _seconds(1, 3600) = 7  # type: ignore[valid-type]
    min_percent: _bounded(0, 100) = 5  # type: ignore[valid-type]


class VirtualService(BaseModel):
    """A VIP, its ports and protocol, and how it spreads clients over its real servers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    address: IPAddress
    # dual-stack: the IPv6 VIP of a service whose ``address`` is its IPv4 one (same ports,
    # same real servers)
    address6: IPAddress | None = None
    port: Port
    extra_ports: Annotated[
        list[int | str], BeforeValidator(_no_booleans), AfterValidator(_port_specs)
    ] = Field(default_factory=list)
    protocol: Protocol = Protocol.tcp
    type: ServiceType = ServiceType.http
    mode: Mode = Mode.l7
    forwarding: Forwarding = Forwarding.nat
    transparent: bool = False
    # l4 nat: real servers that do not route back through the load balancer get the
    # connection from the load balancer's own address (LoadMaster's "subnet originating").
    subnet_originating: bool = False
    # l4: when a real server fails its check, cut its established connections (conntrack
    # entries removed) instead of letting them run on (LoadMaster's "drop on RS failure").
    drop_on_failure: bool = False
    enabled: bool = True
    interface: Annotated[str, AfterValidator(_interface)] | None = None
    scheduler: Scheduler = Scheduler.round_robin
    adaptive: Adaptive | None = None
    persistence: Persistence = Field(default_factory=Persistence)
    check: HealthCheck = Field(default_factory=HealthCheck)
    real_servers: list[RealServer] = Field(default_factory=list)
    # SSL offload (model/tls.py): the certificates of the store it serves, versions, ciphers
    tls: Tls | None = None
    # type starttls: the protocol whose STARTTLS the load balancer speaks
    starttls: StartTls | None = None
    # http (model/rules.py, model/sub_service.py): pools of their own, content rules (first
    # match wins), header operations, a path rewrite, what tells the real servers who the
    # client is, and what clients get when no real server of a pool is up
    sub_services: list[SubService] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    request_headers: list[HeaderOperation] = Field(default_factory=list)
    response_headers: list[HeaderOperation] = Field(default_factory=list)
    rewrite_path: RewritePath | None = None
    forwarded: Forwarded = Forwarded.x_forwarded_for
    # l7: the PROXY protocol header sent to the real servers, and whether clients come
    # through a load balancer in front that sends one (then only it may connect)
    proxy_protocol: ProxyProtocol = ProxyProtocol.none
    # l7: HAProxy logs every request (http) or connection (tcp) of the service; the daemon
    # keeps the lines on disk (``bascule logs``) and logging.syslog gets them too. None: on
    # for l7 (an exported document spells null, which an l4 service may carry)
    request_log: bool | None = None
    # l7: timeouts of the service's connections (seconds), how long a real server that
    # comes back up takes to reach its full weight (0: at once), and how long a drained real
    # server keeps its open connections before the load balancer closes them (0: until they
    # end)
    timeouts: Timeouts | None = None
    slow_start: _bounded(0, 3600) = 0  # type: ignore[valid-type]
    drain_time: _bounded(0, 86400) = 0  # type: ignore[valid-type]
    accept_proxy: bool = False
    not_available: NotAvailable | None = None
    # the access lists (by name) whose clients may reach the service, and those dropped
    # (model/filtering.py); enforced in the kernel for l4 and l7 alike
    access: Access | None = None
    # connections and requests per service and per client (model/limits.py)
    limits: Limits | None = None
    # l7 http: the proxy's cache and compression of responses (model/caching.py)
    cache: Cache | None = None
    compression: Compression | None = None
    # l7 http: basic auth in front, with users of the HTTP user store (model/authentication.py)
    authentication: Authentication | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults_that_depend_on_others(cls, data: Any) -> Any:
        # mode defaults to l7 for tcp and l4 for udp; an l4 service forwards packets, so its
        # type defaults to generic; an http service is checked with an HTTP GET, a starttls
        # one with its protocol's banner, a udp one with ICMP, anything else with a TCP
        # connect unless told otherwise (LoadMaster's defaults).
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("type") == HTTPS:
            # LoadMaster's users say "https": it is http with SSL offload, stored as such
            if data.get("tls") is None:
                raise ValueError(
                    "tls: type https is http with SSL offload: give a tls section naming "
                    "the certificates it serves (tls: {certificates: [NAME]})"
                )
            data["type"] = ServiceType.http
        if data.get("mode") is None:
            data["mode"] = Mode.l4 if data.get("protocol") == Protocol.udp else Mode.l7
        if data.get("type") is None:
            data["type"] = ServiceType.generic if data["mode"] == Mode.l4 else ServiceType.http
        check = data.get("check")
        if check is None or (isinstance(check, dict) and "type" not in check):
            if data["type"] == ServiceType.http:
                default_type = CheckType.http
            elif data["type"] == ServiceType.starttls and data.get("starttls") in set(StartTls):
                default_type = StartTls(data["starttls"]).check
            elif data.get("protocol") == Protocol.udp:
                default_type = CheckType.icmp
            else:
                default_type = CheckType.tcp
            data["check"] = {**(check or {}), "type": default_type}
        if "sub_services" in data:
            data["sub_services"] = _sub_service_checks(data["sub_services"], data["check"])
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.adaptive is not None and self.scheduler is not Scheduler.adaptive:
            raise ValueError("adaptive: only used with scheduler: adaptive")
        if self.protocol is Protocol.udp and self.mode is Mode.l7:
            # the L7 engine (HAProxy) proxies TCP only; UDP is forwarded by the kernel
            raise ValueError("mode: l7 proxies tcp only; a udp service needs mode l4")
        if self.address6 is not None:
            if ipaddress.ip_address(self.address6).version != 6:
                raise ValueError("address6: must be an IPv6 address (the service's IPv6 VIP)")
            if ipaddress.ip_address(self.address).version != 4:
                raise ValueError(
                    "address6: a dual-stack service's address is its IPv4 VIP and address6 "
                    "its IPv6 one; this address is already IPv6"
                )
            if self.type is ServiceType.starttls:
                # stunnel's STARTTLS front accepts on one address (engines/stunnel)
                raise ValueError(
                    "address6: a starttls service listens on one VIP; make a second service "
                    "for the other family"
                )
        return self

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every VIP of the service: ``address``, then ``address6`` when dual-stack."""
        return (self.address,) if self.address6 is None else (self.address, self.address6)

    @property
    def port_ranges(self) -> tuple[PortRange, ...]:
        """The main port followed by every extra port or range."""
        extra = tuple(parse_port_spec(spec) for spec in self.extra_ports)
        return (PortRange(first=self.port, last=self.port), *extra)

    @property
    def logs_requests(self) -> bool:
        """Whether the proxy logs this service's requests (l7, unless request_log: false)."""
        return self.mode is Mode.l7 and self.request_log is not False

    @property
    def checked(self) -> bool:
        return self.check.type is not CheckType.none

    @property
    def check_host(self) -> str | None:
        """The Host header of an http or https check: the check's ``host``, else the VIP as a
        client of the service writes it, with the port unless it is the scheme's default.
        Other check types send no Host header: their ``host`` (a dns check's question) or
        None."""
        if self.check.host is not None:
            return self.check.host
        default_port = self.check.type.default_port
        if default_port is None:
            return None
        if self.tls is not None and self.type.reads_http:
            default_port = HTTPS_PORT  # the clients of an HTTPS service write no port for 443
        vip = f"[{self.address}]" if ":" in self.address else self.address
        return vip if self.port == default_port else f"{vip}:{self.port}"

    def real_server(self, key: str) -> RealServer | None:
        return next((rs for rs in self.real_servers if rs.key == key), None)

    def sub_service(self, name: str) -> SubService | None:
        return next((sub for sub in self.sub_services if sub.name == name), None)

    def pool(self, sub: SubService) -> VirtualService:
        """A sub-service as a service of its own named ``<service>/<sub-service>``: what an
        engine schedules, persists and checks, and what the status reports (not validated
        again: its parts are). It has no rules or sub-services of its own; its ``limits`` and
        ``cache`` are the sub-service's."""
        return self.model_copy(
            update={
                "name": pool_name(self.name, sub.name),
                "scheduler": sub.scheduler or self.scheduler,
                "adaptive": None,
                "persistence": sub.persistence or self.persistence,
                "check": sub.check or self.check,
                "real_servers": sub.real_servers,
                "sub_services": [],
                "rules": [],
                "limits": sub.limits,
                "cache": sub.cache,
            }
        )

    @property
    def pools(self) -> tuple[VirtualService, ...]:
        """The service itself (the default pool), then each sub-service's pool."""
        return (self, *(self.pool(sub) for sub in self.sub_services))


def _sub_service_checks(subs: Any, check: Any) -> Any:
    """A sub-service's check without a type has its service's type (an http service's
    sub-service is checked with HTTP unless told otherwise)."""
    if not isinstance(subs, list) or not isinstance(check, dict):
        return subs
    result = []
    for sub in subs:
        own = sub.get("check") if isinstance(sub, dict) else None
        if isinstance(own, dict) and "type" not in own and "type" in check:
            sub = {**sub, "check": {**own, "type": check["type"]}}
        result.append(sub)
    return result
