"""What the service layer returns to the doors: frozen values, serialisable as JSON."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bascule.model import RealServerState
from bascule.reconcile.diff import DiffItem
from bascule.reconcile.status import ServerStatus, ServiceStatus


class Reload(enum.StrEnum):
    """When a change reloads an engine: ``now`` (while it was applied), ``later`` (applied
    at runtime, made permanent by a deferred reload: HAProxy's servers added at runtime), or
    ``none``."""

    now = "now"
    later = "later"
    none = "none"


@dataclass(frozen=True, kw_only=True)
class ApplyResult:
    """The outcome of a change: the new revision, what changed, what the engine did.
    ``reloads``: an engine reloaded while it was applied (``reload`` is ``now``)."""

    revision: int | None
    changed: bool
    diff: tuple[DiffItem, ...]
    actions: tuple[str, ...]
    reloads: bool
    applied: bool
    message: str
    dry_run: bool
    detections: tuple[Detection, ...] = ()
    reload: Reload = Reload.none


@dataclass(frozen=True, kw_only=True)
class Detection:
    """What ``type: auto`` made of a virtual service, and the evidence for it."""

    virtual_service: str
    type: str
    check: str
    evidence: str
    notes: tuple[str, ...] = ()


# slots: 10,000 real servers' rows at a time (issue 15); a row is held weakly by the status
# route's answer (api/routes/status.py)
@dataclass(frozen=True, kw_only=True, slots=True)
class RealServerStatus:
    key: str
    address: str
    port: int
    weight: int
    engine_weight: int | None
    state: RealServerState  # the configured state
    status: ServerStatus
    check_result: str | None
    check_code: int | None
    check_duration_ms: int | None
    check_detail: str | None
    critical: bool
    current_connections: int
    total_connections: int
    bytes_in: int
    bytes_out: int
    packets: int = 0  # L4 (nftables) only
    total_requests: int = 0  # L7 HTTP only: responses HAProxy had from this server
    # adaptive / weighted_response_time: the engine weight the scheduler decided, and why
    effective_weight: int | None = None
    weight_reason: str | None = None
    # what the administrator should know: a transparent service's server that does not
    # route back through the load balancer (daemon/status.py, transparency_warning)
    warning: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True, weakref_slot=True)
class VirtualServiceStatus:
    name: str
    address: str
    ports: str
    protocol: str
    type: str
    mode: str
    scheduler: str
    status: ServiceStatus
    message: str
    up: int
    total: int
    current_connections: int
    total_connections: int
    bytes_in: int
    bytes_out: int
    real_servers: tuple[RealServerStatus, ...]
    packets: int = 0  # L4 (nftables) only
    total_requests: int = 0  # L7 HTTP only: requests HAProxy received for this service
    # http: each sub-service's pool ("site/api"), its own status and real servers
    sub_services: tuple[VirtualServiceStatus, ...] = ()
    address6: str | None = None  # a dual-stack service's IPv6 VIP


@dataclass(frozen=True, kw_only=True)
class CertificateAlert:
    """A certificate of the store that expires within 30 days, or has expired (``level``:
    warning, critical, expired), or whose automatic renewal failed (``acme_failed``)."""

    name: str
    level: str
    message: str
    not_after: datetime | None
    used_by: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class StatusReport:
    revision: int | None
    applied_revision: int | None
    apply_ok: bool
    apply_message: str
    engine: dict[str, Any] = field(default_factory=dict)
    virtual_services: tuple[VirtualServiceStatus, ...] = ()
    certificates: tuple[CertificateAlert, ...] = ()
