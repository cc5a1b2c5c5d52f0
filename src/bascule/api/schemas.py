"""The API's request and response shapes, kept apart from ``bascule.model``.

The configuration document itself crosses the API as a plain JSON object: the service layer
validates it with ``parse_document`` so every error names the document's own field path. What
is defined here is the envelope around it (revisions, results of a change, status, errors),
converted from the service layer's frozen values by the ``of`` constructors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bascule.daemon.results import ApplyResult, Detection, Reload
from bascule.model import RealServerState
from bascule.reconcile.diff import DiffItem, diff_to_json, format_diff
from bascule.reconcile.status import ServerStatus, ServiceStatus
from bascule.store.revisions import Revision, RevisionSummary

ErrorKind = Literal[
    "invalid_configuration",
    "not_found",
    "not_applicable",
    "conflict",
    "not_active",
    "engine_rejected",
    "apply_failed",
    "store_error",
    "bad_request",
    "internal_error",
    "unauthorized",
    "forbidden",
    "locked_out",
    "acme_failed",
    "peer_unreachable",
]

# -- errors -------------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    """One problem and where: ``virtual_services[0].real_servers[0].weight``, ``query.limit``."""

    path: str
    message: str


class ErrorDetail(BaseModel):
    kind: ErrorKind
    message: str
    fields: list[FieldProblem] = Field(default_factory=list)
    current_revision: int | None = None


class _FromAttributes(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    """The one shape of every error the API returns."""

    error: ErrorDetail


# -- changes ------------------------------------------------------------------------------------


class DiffItemOut(BaseModel):
    """One difference; ``old`` is null for an add, ``new`` is null for a remove."""

    op: Literal["add", "remove", "change"]
    path: str
    old: Any
    new: Any

    @classmethod
    def of_all(cls, items: Iterable[DiffItem]) -> list[DiffItemOut]:
        return [cls.model_validate(item) for item in diff_to_json(items)]


class DetectionOut(_FromAttributes):
    """What ``type: auto`` made of a virtual service: the type and check it now has, the
    evidence (``detected: http — "HTTP/1.1 200" from 198.18.0.11:80``) and any compromise."""

    virtual_service: str
    type: str
    check: str
    evidence: str
    notes: list[str]

    @classmethod
    def of(cls, detection: Detection) -> DetectionOut:
        return cls.model_validate(detection)


class ApplyResultOut(BaseModel):
    """The outcome of a change. ``applied`` false with a committed ``revision``: the change is
    the desired state but the engine could not apply it (``message`` says why). ``detections``
    lists what ``type: auto`` services were detected as."""

    revision: int | None
    changed: bool
    diff: list[DiffItemOut]
    diff_text: str
    actions: list[str]
    reloads: bool = Field(description="an engine reloaded while the change was applied")
    reload: Reload = Field(
        default=Reload.none,
        description="now: an engine reloaded to apply it; later: applied at runtime, a "
        "seamless reload follows within seconds (real servers added to HAProxy); none",
    )
    applied: bool
    message: str
    dry_run: bool
    detections: list[DetectionOut] = Field(default_factory=list)

    @classmethod
    def of(cls, result: ApplyResult) -> ApplyResultOut:
        return cls(
            revision=result.revision,
            changed=result.changed,
            diff=DiffItemOut.of_all(result.diff),
            diff_text=format_diff(result.diff),
            actions=list(result.actions),
            reloads=result.reloads,
            reload=result.reload,
            applied=result.applied,
            message=result.message,
            dry_run=result.dry_run,
            detections=[DetectionOut.of(d) for d in result.detections],
        )


# -- the document -------------------------------------------------------------------------------


class ConfigOut(BaseModel):
    """The current configuration; ``revision`` is null while nothing was ever committed."""

    revision: int | None
    document: dict[str, Any]


class ItemsOut(BaseModel):
    """Virtual services or real servers of the current revision, as document objects, a page
    at a time when ``limit`` is given: ``total`` counts them all, ``next_offset`` is the
    ``offset`` of the next page (null: no more)."""

    revision: int | None
    items: list[dict[str, Any]]
    total: int
    next_offset: int | None = None


# -- revisions ----------------------------------------------------------------------------------


class RevisionSummaryOut(_FromAttributes):
    number: int
    created_at: datetime
    author: str
    message: str
    changes: int
    rolled_back_from: int | None

    @classmethod
    def of(cls, summary: RevisionSummary) -> RevisionSummaryOut:
        return cls.model_validate(summary)


class RevisionPage(BaseModel):
    """Newest first; pass ``next_before`` as ``before`` for the next page (null: no more)."""

    items: list[RevisionSummaryOut]
    next_before: int | None

    @classmethod
    def of(cls, summaries: Sequence[RevisionSummary], *, limit: int) -> RevisionPage:
        """``summaries`` holds up to ``limit + 1`` rows: one more means another page exists."""
        page = summaries[:limit]
        more = len(summaries) > limit
        return cls(
            items=[RevisionSummaryOut.of(s) for s in page],
            next_before=page[-1].number if more and page else None,
        )


class RevisionOut(RevisionSummaryOut):
    """One revision with its document and the diff from the revision before it."""

    document: dict[str, Any]
    diff: list[DiffItemOut]
    diff_text: str

    @classmethod
    def of(cls, revision: Revision) -> RevisionOut:  # type: ignore[override]
        return cls(
            **RevisionSummaryOut.of(revision.summary()).model_dump(),
            document=revision.document,
            diff=DiffItemOut.of_all(revision.diff),
            diff_text=format_diff(revision.diff),
        )


class DiffOut(BaseModel):
    diff: list[DiffItemOut]
    text: str

    @classmethod
    def of(cls, items: Sequence[DiffItem]) -> DiffOut:
        return cls(diff=DiffItemOut.of_all(items), text=format_diff(items))


# -- status -------------------------------------------------------------------------------------
# Mirrors of daemon.results, read from its dataclasses by attribute.


class RealServerStatusOut(_FromAttributes):
    key: str
    address: str
    port: int
    weight: int
    engine_weight: int | None
    state: RealServerState
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
    packets: int = 0
    total_requests: int = Field(default=0, description="L7 HTTP: responses from this server")
    effective_weight: int | None = Field(
        default=None, description="adaptive / weighted_response_time: the weight decided now"
    )
    weight_reason: str | None = Field(
        default=None, description='why, e.g. "agent load 80 %" or "check time 12 ms (EWMA)"'
    )
    warning: str | None = Field(
        default=None,
        description="transparent services: the server does not route back through the "
        "load balancer (its clients' connections fail while its checks pass)",
    )


class VirtualServiceStatusOut(_FromAttributes):
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
    packets: int = 0
    total_requests: int = Field(default=0, description="L7 HTTP: requests received")
    address6: str | None = Field(default=None, description="a dual-stack service's IPv6 VIP")
    real_servers: list[RealServerStatusOut]
    sub_services: list[VirtualServiceStatusOut] = Field(
        default_factory=list,
        description='http: each sub-service\'s pool, named "<service>/<sub-service>"',
    )


class CertificateAlertOut(_FromAttributes):
    name: str
    level: str = Field(description="warning (30 days), critical (7 days), expired, acme_failed")
    message: str
    not_after: datetime | None
    used_by: list[str] = Field(description="the virtual services that serve it")


class StatusOut(_FromAttributes):
    revision: int | None
    applied_revision: int | None
    apply_ok: bool
    apply_message: str
    engine: dict[str, Any]
    virtual_services: list[VirtualServiceStatusOut]
    certificates: list[CertificateAlertOut] = Field(
        default_factory=list,
        description="certificates of the store that expire soon, have expired, or failed to renew",
    )
