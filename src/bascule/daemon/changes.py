"""The change pipeline: one change from any door, validated, checked, committed and applied.

Every door (the API's routes, the WUI's pages, the CLI through the API) hands the service
layer a ``ChangeRequest``: who asks (the ``Actor``: name, role, how, from where), on which
revision, why, and whether it is only a dry run. The pipeline runs the flow of DESIGN.md
under the reconciler's lock, so changes are serialised::

    base revision check -> the edit (model/edits.py) -> parse_document, probing type: auto
    (detect/) -> the tls names in the certificate store -> VIP placement -> the plan preview
    -> the check of each engine that reloads (haproxy -c, nft -c) -> store.commit (a new
    revision and its audit entry, one transaction) -> reconcile (daemon/reconciler.py), whose
    first pass executes the preview -> the apply outcome

When the engines run the head as it was committed (its last apply succeeded), the preview
plans only the engines whose share of the document the change touches: the others are
neither observed nor planned (a new L4 server does not ask HAProxy for its servers' state).

Nothing is committed unless the whole document validates and the own checker of every
engine that would install a configuration accepts it (runtime changes install none). The
audit log gets one entry per change, whatever the door: a committed change's is written with
its revision and settled to ``apply_failed`` if the engines then fail; a refused change's is
recorded as ``refused``; dry runs and no-ops are not recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from bascule.daemon.audit import AuditOutcome, AuditService
from bascule.daemon.reconciler import Planned, Reconciler
from bascule.daemon.results import ApplyResult, Detection, Reload
from bascule.detect import ServiceProber, check_given, choose, rewrite
from bascule.engines.base import share_of
from bascule.errors import BasculeError, Conflict, FieldError, InvalidConfiguration
from bascule.model import Configuration, ServiceType
from bascule.model.access import Actor
from bascule.model.document import document_of, parse_document
from bascule.model.types import single_line
from bascule.reconcile.actions import ChangeServers
from bascule.reconcile.diff import DiffItem, diff_documents, diff_to_json
from bascule.reconcile.planner import FullPlan
from bascule.store.revisions import Revision
from bascule.text import escape_control

log = logging.getLogger("bascule.service")

Change = Callable[[Mapping[str, Any]], Any]
"""The current document -> the new one (an edit of model/edits.py, or a whole document)."""

StoreCheck = Callable[[Configuration], list[FieldError]]
"""A document -> what the certificate store cannot serve of its ``tls`` names."""


class _Unchecked:
    """The writer did not name a base revision (a single edit applied to the current head)."""

    def __repr__(self) -> str:
        return "UNCHECKED"


UNCHECKED: Final = _Unchecked()
#: The longest revision message, and the longest author name, a change may carry.
MAX_MESSAGE = 1000
MAX_AUTHOR = 128
Base = int | None | _Unchecked
"""The revision a change was based on: a number, ``None`` for an empty store, or UNCHECKED."""


@dataclass(frozen=True, kw_only=True)
class ChangeRequest:
    """Who asks for a change, on which revision, why, and whether only to see its plan.

    Each door builds one per request (``api/deps.py``, ``web/changes.py``); the service layer
    records the actor in the history (its name) and the audit log (name, role, address).
    """

    actor: Actor
    base: Base = UNCHECKED  # a change on another revision than the head is a Conflict
    message: str = ""  # why, recorded with the revision: one line, MAX_MESSAGE characters
    dry_run: bool = False  # validate, check and plan; commit and apply nothing

    def __post_init__(self) -> None:
        # Free text a person stores, shown later on terminals and pages: one line, no control
        # character (an ESC in a message used to reach every `bascule history`).
        problems = []
        for path, value, limit in (
            ("message", self.message, MAX_MESSAGE),
            ("author", self.actor.name, MAX_AUTHOR),
        ):
            try:
                single_line(value, max_length=limit)
            except ValueError as exc:
                problems.append(FieldError(path=path, message=str(exc)))
        if problems:
            raise InvalidConfiguration(problems)

    def with_default_message(self, message: str) -> ChangeRequest:
        """This request, saying ``message`` unless the person gave their own. ``message`` is
        ours but quotes what was sent (a server's address, a service's name), which the model
        has not judged yet: its control characters are escaped and it is cut to length, so the
        model's own error about the field is what the sender hears."""
        if self.message:
            return self
        text = escape_control(message)
        if len(text) > MAX_MESSAGE:
            text = text[: MAX_MESSAGE - 3] + "..."
        return dataclasses.replace(self, message=text)

    def with_dry_run(self, dry_run: bool = True) -> ChangeRequest:
        """The same request as a dry run (the WUI's preview) or for real (its Apply)."""
        return dataclasses.replace(self, dry_run=dry_run)


@dataclass(frozen=True, kw_only=True)
class AuditName:
    """How a change is named in the audit log: ``config.apply`` of ``""``,
    ``real_server.state`` of ``web/198.18.0.4:80``..."""

    action: str
    target: str = ""


class ChangePipeline:
    """Runs one change at a time through the flow of a change (see the module's doc)."""

    # type: auto probes real servers; tests put a fake in its place.
    detector: ServiceProber = ServiceProber()

    def __init__(self, reconciler: Reconciler, *, audit: AuditService | None = None) -> None:
        """``audit`` records every change, committed or refused (who, from where, the diff);
        its log must be in the reconciler's store's database, whose commits write a
        revision's entry."""
        self.reconciler = reconciler
        self.store = reconciler.store
        self.audit = audit
        # the certificate store's word on a document's tls names (daemon/certificates.py)
        self.store_check: StoreCheck | None = None
        # an HA pair (daemon/pair.py): raises NotTheActive on the standby, before anything;
        # after a commit, hands the new revision to the standby before the write returns
        self.guard: Callable[[], None] | None = None
        self.after_commit: Callable[[], Awaitable[None]] | None = None
        # on the event loop after every change that ran (this pipeline's and operations'):
        # the daemon gives the memory a change freed back to the system (daemon/heap.py)
        self.after_change: Callable[[], None] | None = None

    async def run(
        self,
        change: Change,
        request: ChangeRequest,
        *,
        name: AuditName,
        rolled_back_from: int | None = None,
    ) -> ApplyResult:
        """Run ``change`` under the lock; ``name`` names it in the audit log."""
        async with self.reconciler.lock:
            try:
                result = await self._run_locked(change, request, name, rolled_back_from)
            except BasculeError as exc:
                if not request.dry_run:
                    self.refused(request, name, exc)
                raise
            self.settle(request, result)
            return result

    def settle(self, request: ChangeRequest, result: ApplyResult) -> None:
        """The end of a change that ran: a committed one the engines could not apply has its
        audit entry say so; then ``after_change``."""
        if self.after_change is not None:
            self.after_change()
        if (
            self.audit is not None
            and result.changed
            and not result.dry_run
            and not result.applied
            and result.revision is not None
        ):
            detail = "; ".join(part for part in (request.message, result.message) if part)
            self.audit.settle(result.revision, outcome=AuditOutcome.apply_failed, detail=detail)

    def refused(self, request: ChangeRequest, name: AuditName, error: BasculeError) -> None:
        """Record a refused change (a committed one is written by the store's commit)."""
        if self.audit is None:
            return
        self.audit.record(
            request.actor,
            name.action,
            name.target,
            outcome=AuditOutcome.refused,
            detail=str(error),
        )

    async def _run_locked(
        self,
        change: Change,
        request: ChangeRequest,
        name: AuditName,
        rolled_back_from: int | None,
    ) -> ApplyResult:
        if self.guard is not None:
            self.guard()
        head = self.store.head()
        head_number = head.number if head else None
        if not isinstance(request.base, _Unchecked) and request.base != head_number:
            raise Conflict(base=request.base, current=head_number)
        current_document = dict(head.document) if head else Configuration().to_document()
        # The CPU-heavy steps (the edit, validation, the document and its diff) run in a worker
        # thread: on the event loop, a 10,000-service document held every other request
        # (status, logins, the WUI) for seconds. They are pure, and the lock is still held.
        edited = await asyncio.to_thread(change, current_document)
        # the head's services the edit left alone (the same mappings) are not validated again
        parsed = self.reconciler.parsed(head) if head else None
        previous = (head.document, parsed) if head and parsed else None
        config, detections = await self._detect_types(edited, previous)
        if self.store_check is not None:
            problems = self.store_check(config)
            if problems:
                raise InvalidConfiguration(problems)
        await self._check_vips(config)
        document, diff = await asyncio.to_thread(
            _document_and_diff, config, previous or ((head.document, None) if head else None)
        )
        converged = self._converged(head, parsed)
        preview = await self.reconciler.plan(config, converged=converged)
        # Each engine's checker judges the configuration it would install. An engine whose plan
        # does not reload installs none (a weight or a state is a runtime command; its share
        # may also be unchanged): haproxy -c of 10,000 servers for a weight was most of its
        # cost (issue 15). What a later reload installs is checked then.
        reloading = {name for name, plan in preview.engines if plan.reloads}
        for engine in self.reconciler.engines:
            if engine.name in reloading:
                await engine.check(share_of(engine, config))
        actions = preview.descriptions()
        if request.dry_run or not diff:
            reload = Reload.none
            if diff and preview.reloads:
                reload = Reload.now
            elif diff and _defers(preview, adding=True):
                reload = Reload.later
            return ApplyResult(
                revision=head_number,
                changed=bool(diff),
                diff=diff,
                actions=actions if diff else (),
                reloads=reload is Reload.now,
                reload=reload,
                applied=not diff,
                message="dry run: nothing was changed" if request.dry_run else "no change",
                dry_run=request.dry_run,
                detections=detections,
            )
        actor = request.actor
        entry = None
        if self.audit is not None:
            entry = self.audit.entry(
                actor,
                name.action,
                name.target,
                diff=await asyncio.to_thread(diff_to_json, diff),
                detail=request.message,
            )
        # The committed document is ``config``'s own: no need to parse it again to reconcile,
        # and known before the commit is visible (a reader of the new head on the event loop
        # would otherwise parse the whole document there).
        self.reconciler.committed((head_number or 0) + 1, config)
        # JSON of the whole document and an fsync: off the loop too. The diff is known: the
        # store neither decodes nor compares the document again (the first revision neither).
        try:
            revision = await asyncio.to_thread(
                functools.partial(self.store.commit_operation, document, diff, base=head_number),
                author=actor.name,
                message=request.message,
                rolled_back_from=rolled_back_from,
                audit=entry,
            )
        except BaseException:
            self.reconciler.forget((head_number or 0) + 1)
            raise
        log.info(
            "committed revision",
            extra={"revision": revision.number, "author": actor.name, "changes": len(diff)},
        )
        reloads = self.reconciler.reloads()
        # the preview was planned under the lock, from what the engines run: it is the
        # reconcile's first pass, not planned (and the engines observed) a second time
        ok, error = await self.reconciler.reconcile_locked(
            planned=Planned(desired=config, plan=preview, converged=converged)
        )
        # what happened, not only what was planned: servers the engine could not change at
        # runtime were applied by a reload
        reload = Reload.none
        if preview.reloads or self.reconciler.reloads() != reloads:
            reload = Reload.now
        elif _defers(preview, adding=False) and self.reconciler.reload_pending():
            reload = Reload.later
        if self.after_commit is not None:
            await self.after_commit()
        return ApplyResult(
            revision=revision.number,
            changed=True,
            diff=diff,
            actions=actions,
            reloads=reload is Reload.now,
            reload=reload,
            applied=ok,
            message=error,
            dry_run=False,
            detections=detections,
        )

    def _converged(
        self, head: Revision | None, parsed: Configuration | None
    ) -> Configuration | None:
        """The head's configuration when the engines run it as it was committed (its last
        apply succeeded, as the operate path requires): the plan of a change then leaves
        alone the engines whose share it does not change. ``None``: plan every engine."""
        if head is None or parsed is None:
            return None
        applied = self.store.applied()
        if applied is None or not applied.ok or applied.last_good != head.number:
            return None
        return parsed

    async def _detect_types(
        self, data: Any, previous: tuple[Mapping[str, Any], Configuration] | None = None
    ) -> tuple[Configuration, tuple[Detection, ...]]:
        """Parse ``data`` (an edit of ``previous``, when given: ``parse_document``), probing
        the real servers of every ``type: auto`` service so the document names the detected
        type (and check, unless the user chose one).

        Probes run concurrently and each is bounded (detect/probes.py): an apply never hangs
        on a real server that does not answer.
        """
        config = await asyncio.to_thread(functools.partial(parse_document, previous=previous), data)
        auto = [i for i, vs in enumerate(config.virtual_services) if vs.type is ServiceType.auto]
        if not auto:
            return config, ()
        verdicts = await asyncio.gather(
            *(self.detector.detect(config.virtual_services[i]) for i in auto)
        )
        choices = {
            i: choose(verdict, config.virtual_services[i], keep_check=check_given(data, i))
            for i, verdict in zip(auto, verdicts, strict=True)
        }
        try:
            detected = await asyncio.to_thread(parse_document, rewrite(data, choices))
        except InvalidConfiguration as exc:
            # say what was detected next to what it made invalid
            evidence = [
                FieldError(path=f"virtual_services[{i}].type", message=f"auto: {v.evidence}")
                for i, v in zip(auto, verdicts, strict=True)
            ]
            raise InvalidConfiguration([*evidence, *exc.errors]) from None
        detections = tuple(
            Detection(
                virtual_service=detected.virtual_services[i].name,
                type=detected.virtual_services[i].type.value,
                check=detected.virtual_services[i].check.type.value,
                evidence=verdict.evidence,
                notes=choices[i].notes,
            )
            for i, verdict in zip(auto, verdicts, strict=True)
        )
        for detection in detections:
            log.info(
                "type auto detected",
                extra={"service": detection.virtual_service, "evidence": detection.evidence},
            )
        return detected, detections

    async def _check_vips(self, config: Configuration) -> None:
        """Each service's mode must be one a running engine serves, and each VIP must be on
        the machine or placeable on an interface (daemon/vips.py)."""
        problems = []
        modes = {engine.mode for engine in self.reconciler.engines}
        for index, vs in enumerate(config.virtual_services):
            if vs.mode not in modes:
                problems.append(
                    FieldError(
                        path=f"virtual_services[{index}].mode",
                        message=f"{vs.mode.value} is not available: this daemon runs no "
                        f"{vs.mode.value} engine",
                    )
                )
        # (service index, field, address, interface): each VIP, both of a dual-stack service
        wanted = [
            (index, field, address, vs.interface)
            for index, vs in enumerate(config.virtual_services)
            for field, address in zip(("address", "address6"), vs.addresses, strict=False)
        ]
        reasons = await self.reconciler.vips.placement_problems(
            [(address, interface) for _, _, address, interface in wanted]
        )
        for (index, field, _, interface), reason in zip(wanted, reasons, strict=True):
            if reason is not None:
                problems.append(
                    FieldError(
                        path=f"virtual_services[{index}].{'interface' if interface else field}",
                        message=reason,
                    )
                )
        if problems:
            raise InvalidConfiguration(problems)


def _defers(plan: FullPlan, *, adding: bool) -> bool:
    """Whether an engine changes servers at runtime that a deferred reload then makes
    permanent (engines/haproxy/engine.py); ``adding``: servers are added."""
    return any(
        isinstance(a, ChangeServers) and a.reload_follows and (a.added or not adding)
        for _, p in plan.engines
        for a in p.actions
    )


def _document_and_diff(
    config: Configuration,
    previous: tuple[Mapping[str, Any], Configuration | None] | None,
) -> tuple[dict[str, Any], tuple[DiffItem, ...]]:
    """The document of ``config`` and its difference from ``previous`` (the head's document,
    and the configuration parsed from it when known) (pure; in a thread).

    A service of ``config`` that is one of the previous configuration's (the same model:
    ``parse_document`` kept it) keeps its stored mapping and is left out of the comparison,
    where it could show no change: an edit of one service of 1,000 costs what it touched, as
    on the operate path (issue 15). The diff is the one of the whole documents; its items hold
    the documents' own values (neither is ever changed in place), not copies."""
    old, parsed = previous if previous is not None else (None, None)
    old_services = old.get("virtual_services") if old is not None else None
    if (
        old is None
        or parsed is None
        or not isinstance(old_services, list)
        or len(old_services) != len(parsed.virtual_services)
    ):
        document = config.to_document()
        return document, diff_documents(old, document, share=True)
    stored = {
        id(vs): vs_doc for vs, vs_doc in zip(parsed.virtual_services, old_services, strict=True)
    }
    document = config.model_copy(update={"virtual_services": []}).to_document()
    document["virtual_services"] = [
        stored.get(id(vs)) or document_of(vs) for vs in config.virtual_services
    ]
    kept = {id(vs_doc) for vs_doc in document["virtual_services"]} & {id(d) for d in old_services}
    diff = diff_documents(
        {**old, "virtual_services": [d for d in old_services if id(d) not in kept]},
        {
            **document,
            "virtual_services": [d for d in document["virtual_services"] if id(d) not in kept],
        },
        share=True,
    )
    return document, diff
