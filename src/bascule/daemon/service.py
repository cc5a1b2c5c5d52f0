"""The one service layer: every change from every door (API, WUI, CLI, YAML) goes through it.

A change runs the flow of DESIGN.md under one lock, so changes are serialised::

    parse_document (model) -> VIP placement -> each engine's check (haproxy -c, nft -c)
    -> base revision check -> store.commit (a new revision) -> reconcile (plan, execute)
    -> record the apply outcome

Each engine runs the services of its mode (HAProxy l7, nftables l4); the planner is run once
per engine on that engine's share of the document, and VIPs are planned for the whole.

Nothing is committed unless the whole document validates and the engine's own checker accepts
it. A failed apply leaves the previous working state running (the engine rolls back) and is
reported in the status as ``apply_error``; the revision stays committed as the desired state
so the user can fix it forward or roll back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from bascule.daemon.audit import AuditService
from bascule.daemon.results import ApplyResult, Detection, StatusReport
from bascule.daemon.status import build_status
from bascule.daemon.vips import VipManager
from bascule.detect import ServiceProber, check_given, choose, rewrite
from bascule.dsr.report import DsrReport
from bascule.dsr.script import is_dsr, script
from bascule.dsr.target import TargetOs
from bascule.dsr.verify import DsrVerifier, PacketDsrVerifier
from bascule.engines.base import (
    Engine,
    EngineObservation,
    PersistenceEntry,
    PersistenceTables,
    merge_observations,
)
from bascule.errors import (
    ApplyFailed,
    BasculeError,
    Conflict,
    EngineError,
    FieldError,
    InvalidConfiguration,
    NotApplicable,
    NotFound,
)
from bascule.model import Configuration, ServiceType, VirtualService, edits, parse_document
from bascule.model.document import for_mode
from bascule.reconcile.actions import (
    Action,
    EnsureVip,
    RemoveVip,
    ReplaceConfig,
    SetState,
    SetWeight,
)
from bascule.reconcile.diff import DiffItem, diff_documents, diff_to_json
from bascule.reconcile.planner import Observed, Overrides, Plan, plan_engine, plan_vips
from bascule.store.revisions import Revision, RevisionStore, RevisionSummary

log = logging.getLogger("bascule.service")


class _Unchecked:
    """The writer did not name a base revision (a single edit applied to the current head)."""

    def __repr__(self) -> str:
        return "UNCHECKED"


UNCHECKED: Final = _Unchecked()
Base = int | None | _Unchecked


@dataclass(frozen=True, kw_only=True)
class _Audit:
    """How a change is named in the audit log, and who asked from where (besides the author)."""

    action: str
    target: str = ""
    role: str = ""
    remote: str = ""


def describe(action: Action) -> str:
    """One line per action, as the CLI and the WUI show a plan."""
    match action:
        case EnsureVip(address=address, interface=interface):
            return f"add VIP {address}" + (f" on {interface}" if interface else "")
        case RemoveVip(address=address):
            return f"remove VIP {address}"
        case ReplaceConfig(reason=reason):
            return f"replace the configuration and reload ({reason})"
        case SetWeight(vs=vs, server=server, weight=weight):
            return f"set weight of {vs}/{server} to {weight} (runtime, no reload)"
        case SetState(vs=vs, server=server, state=state):
            return f"set {vs}/{server} {state.value} (runtime, no reload)"
    raise AssertionError(f"unknown action {action!r}")  # pragma: no cover


class ConfigService:
    """Configuration changes, history and status over one store, the engines and the VIPs."""

    # DSR real-server checks on the wire; tests put a fake in its place.
    dsr_verifier: DsrVerifier = PacketDsrVerifier()
    # type: auto probes real servers; tests put a fake in its place.
    detector: ServiceProber = ServiceProber()

    def __init__(
        self,
        *,
        store: RevisionStore,
        engines: Sequence[Engine],
        vips: VipManager,
        after_reconcile: Callable[[Configuration], Awaitable[None]] | None = None,
        overrides: Callable[[], Overrides] | None = None,
        audit: AuditService | None = None,
    ) -> None:
        """``after_reconcile`` is awaited with the desired document after every reconcile
        (the daemon points the L4 health checker at its real servers). ``overrides`` gives
        the weights dynamic schedulers decided (daemon/dynamic.py): the planner keeps them.
        ``audit`` records every change, committed or refused (who, from where, the diff); its
        log must be in ``store``'s database, whose commits write a revision's entry."""
        if not engines:
            raise ValueError("ConfigService needs at least one engine")
        self.store = store
        self._after_reconcile = after_reconcile
        self._overrides = overrides or dict
        self.audit = audit
        self.engines = tuple(engines)
        self.vips = vips
        self._lock = asyncio.Lock()
        self._applied: dict[str, Configuration | None] = {e.name: None for e in self.engines}
        # The parsed document of the newest revision read: a revision never changes, and
        # status() (polled by the WUI and the statistics) would otherwise re-validate the whole
        # document every time.
        self._parsed: tuple[int, Configuration] | None = None

    # -- reading ------------------------------------------------------------------------------

    def document(self) -> tuple[int | None, dict[str, Any]]:
        """The current revision number and its document (an empty one before the first)."""
        head = self.store.head()
        if head is None:
            return None, Configuration().to_document()
        return head.number, dict(head.document)

    def desired(self) -> Configuration:
        return self._desired_of(self.store.head())

    def _desired_of(self, head: Revision | None) -> Configuration:
        """The parsed document of ``head`` (validated once per revision)."""
        if head is None:
            return Configuration()
        if self._parsed is None or self._parsed[0] != head.number:
            self._parsed = (head.number, parse_document(head.document))
        return self._parsed[1]

    def history(self, *, limit: int = 50, before: int | None = None) -> list[RevisionSummary]:
        return self.store.history(limit=limit, before=before)

    def revision(self, number: int) -> Revision:
        return self.store.get(number)

    def diff(self, a: int, b: int) -> tuple[DiffItem, ...]:
        return self.store.diff(a, b)

    # -- changing -----------------------------------------------------------------------------

    async def apply(
        self,
        data: Any,
        *,
        base: Base = UNCHECKED,
        author: str,
        role: str = "",
        remote: str = "",
        message: str = "",
        dry_run: bool = False,
    ) -> ApplyResult:
        """Validate, check, commit and apply a whole document. ``author`` (with its ``role``)
        and ``remote`` say who asked and from where, for the history and the audit log."""
        async with self._lock:
            return await self._apply_locked(
                lambda _current: data,
                base=base,
                author=author,
                message=message,
                dry_run=dry_run,
                audit=_Audit(action="config.apply", role=role, remote=remote),
            )

    async def edit(
        self,
        change: Callable[[Mapping[str, Any]], dict[str, Any]],
        *,
        base: Base = UNCHECKED,
        author: str,
        role: str = "",
        remote: str = "",
        message: str,
        dry_run: bool = False,
        action: str = "config.edit",
        target: str = "",
    ) -> ApplyResult:
        """Apply ``change`` (a pure edit from model.edits) to the current document;
        ``action`` and ``target`` name it in the audit log."""
        async with self._lock:
            return await self._apply_locked(
                change,
                base=base,
                author=author,
                message=message,
                dry_run=dry_run,
                audit=_Audit(action=action, target=target, role=role, remote=remote),
            )

    async def set_real_server_state(
        self,
        service: str,
        key: str,
        state: str,
        *,
        base: Base = UNCHECKED,
        author: str,
        role: str = "",
        remote: str = "",
    ) -> ApplyResult:
        return await self.edit(
            lambda doc: edits.update_real_server(doc, service, key, {"state": state}),
            base=base,
            author=author,
            role=role,
            remote=remote,
            message=f"{state} real server {key} of {service}",
            action="real_server.state",
            target=f"{service}/{key}",
        )

    async def rollback(
        self, to: int, *, base: Base = UNCHECKED, author: str, role: str = "", remote: str = ""
    ) -> ApplyResult:
        """Make revision ``to`` current again, as a new revision."""
        audit = _Audit(action="config.rollback", target=str(to), role=role, remote=remote)
        try:
            target = self.store.get(to)
        except BasculeError as exc:
            self._record(audit, author, "refused", str(exc))
            raise
        async with self._lock:
            return await self._apply_locked(
                lambda _current: target.document,
                base=base,
                author=author,
                message=f"roll back to revision {to}",
                dry_run=False,
                rolled_back_from=to,
                audit=audit,
            )

    async def _apply_locked(
        self,
        change: Callable[[Mapping[str, Any]], Any],
        *,
        base: Base,
        author: str,
        message: str,
        dry_run: bool,
        audit: _Audit,
        rolled_back_from: int | None = None,
    ) -> ApplyResult:
        """A change under the lock; ``audit`` names it in the audit log, where committed and
        refused changes are recorded (dry runs and no-ops are not). A committed change's
        entry is written with its revision, in one transaction; a failed apply settles it."""
        try:
            result = await self._change_locked(
                change,
                base=base,
                author=author,
                message=message,
                dry_run=dry_run,
                rolled_back_from=rolled_back_from,
                audit=audit,
            )
        except BasculeError as exc:
            if not dry_run:
                self._record(audit, author, "refused", str(exc))
            raise
        if (
            self.audit is not None
            and result.changed
            and not result.dry_run
            and not result.applied
            and result.revision is not None
        ):
            detail = "; ".join(part for part in (message, result.message) if part)
            self.audit.settle(result.revision, outcome="apply_failed", detail=detail)
        return result

    def _record(self, audit: _Audit, author: str, outcome: str, detail: str) -> None:
        """Record a refused change (a committed one is written by the store's commit)."""
        if self.audit is None:
            return
        self.audit.record(
            author,
            audit.action,
            audit.target,
            role=audit.role,
            remote=audit.remote,
            outcome=outcome,
            detail=detail,
        )

    async def _change_locked(
        self,
        change: Callable[[Mapping[str, Any]], Any],
        *,
        base: Base,
        author: str,
        message: str,
        dry_run: bool,
        rolled_back_from: int | None,
        audit: _Audit,
    ) -> ApplyResult:
        head = self.store.head()
        head_number = head.number if head else None
        if not isinstance(base, _Unchecked) and base != head_number:
            raise Conflict(base=base, current=head_number)
        current_document = dict(head.document) if head else Configuration().to_document()
        config, detections = await self._detect_types(change(current_document))
        await self._check_vips(config)
        document = config.to_document()
        diff = diff_documents(head.document if head else None, document)
        for engine in self.engines:
            await engine.check(for_mode(config, engine.mode))
        preview = await self._plan(config)
        actions = preview.descriptions()
        if dry_run or not diff:
            return ApplyResult(
                revision=head_number,
                changed=bool(diff),
                diff=diff,
                actions=actions if diff else (),
                reloads=preview.reloads and bool(diff),
                applied=not diff,
                message="dry run: nothing was changed" if dry_run else "no change",
                dry_run=dry_run,
                detections=detections,
            )
        entry = None
        if self.audit is not None:
            entry = self.audit.entry(
                author,
                audit.action,
                audit.target,
                role=audit.role,
                remote=audit.remote,
                diff=diff_to_json(diff),
                detail=message,
            )
        revision = self.store.commit(
            document,
            base=head_number,
            author=author,
            message=message,
            rolled_back_from=rolled_back_from,
            audit=entry,
        )
        # The committed document is ``config``'s own: no need to parse it again to reconcile.
        self._parsed = (revision.number, config)
        log.info(
            "committed revision",
            extra={"revision": revision.number, "author": author, "changes": len(diff)},
        )
        ok, error = await self._reconcile_locked()
        return ApplyResult(
            revision=revision.number,
            changed=True,
            diff=diff,
            actions=actions,
            reloads=preview.reloads,
            applied=ok,
            message=error,
            dry_run=False,
            detections=detections,
        )

    async def _detect_types(self, data: Any) -> tuple[Configuration, tuple[Detection, ...]]:
        """Parse ``data``, probing the real servers of every ``type: auto`` service so the
        document names the detected type (and check, unless the user chose one).

        Probes run concurrently and each is bounded (detect/probes.py): an apply never hangs
        on a real server that does not answer.
        """
        config = parse_document(data)
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
            detected = parse_document(rewrite(data, choices))
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
        problems = []
        modes = {engine.mode for engine in self.engines}
        for index, vs in enumerate(config.virtual_services):
            if vs.mode not in modes:
                problems.append(
                    FieldError(
                        path=f"virtual_services[{index}].mode",
                        message=f"{vs.mode.value} is not available: this daemon runs no "
                        f"{vs.mode.value} engine",
                    )
                )
        services = config.virtual_services
        wanted = [(vs.address, vs.interface) for vs in services]
        reasons = await self.vips.placement_problems(wanted)
        for index, (vs, reason) in enumerate(zip(services, reasons, strict=True)):
            if reason is not None:
                field = "interface" if vs.interface else "address"
                problems.append(
                    FieldError(path=f"virtual_services[{index}].{field}", message=reason)
                )
        if problems:
            raise InvalidConfiguration(problems)

    # -- reconciling ----------------------------------------------------------------------------

    async def reconcile(self, *, retry_failed: bool = True) -> tuple[bool, str]:
        """Converge the engine on the current revision; returns (ok, error message).

        The periodic repair loop passes ``retry_failed=False``: a revision the engine could
        not apply is not retried again and again (each failed attempt means a reload and a
        rollback); instead the loop keeps the last good revision running — it restarts a
        dead engine and repairs drift towards it — until a new change, a rollback or a
        restart of the daemon tries the current revision again.
        """
        async with self._lock:
            if not retry_failed:
                head, applied = self.store.head_number(), self.store.applied()
                if applied is not None and applied.last_attempt == head and not applied.ok:
                    if applied.last_good is not None:
                        await self._converge_on_last_good(applied.last_good)
                    return False, applied.message
            return await self._reconcile_locked()

    async def _converge_on_last_good(self, number: int) -> None:
        try:
            last_good = parse_document(self.store.get(number).document)
            await self._converge(last_good)
        except (ApplyFailed, EngineError, OSError, InvalidConfiguration) as exc:
            log.error("could not restore the last good revision", extra={"error": str(exc)})

    async def _converge(self, desired: Configuration) -> None:
        # A reload renders every weight and state; a second pass corrects any drift the
        # engine reports afterwards (for instance a state restored from the state file).
        for _ in range(3):
            current = await self._plan(desired)
            if current.empty:
                break
            log.info("executing plan", extra={"actions": list(current.descriptions())})
            await self._execute(current, desired)

    async def _plan(self, desired: Configuration) -> _FullPlan:
        ensure, remove = plan_vips(desired, self.vips.owned())
        per_engine: list[tuple[Engine, Plan]] = []
        for engine in self.engines:
            observation = await engine.observe(self._applied[engine.name], counters=False)
            applied = self._applied[engine.name] if observation.running else None
            observed = Observed(applied=applied, servers=observation.runtime())
            part = for_mode(desired, engine.mode)
            engine_plan = plan_engine(
                part, observed, max_weight=engine.max_weight, overrides=self._overrides()
            )
            per_engine.append((engine, engine_plan))
        return _FullPlan(ensure=ensure, engines=tuple(per_engine), remove=remove)

    async def _reconcile_locked(self) -> tuple[bool, str]:
        head = self.store.head()
        desired = self._desired_of(head)
        try:
            return await self._reconcile_on(head, desired)
        finally:
            if self._after_reconcile is not None:
                await self._after_reconcile(desired)

    async def _reconcile_on(
        self, head: Revision | None, desired: Configuration
    ) -> tuple[bool, str]:
        try:
            await self._converge(desired)
        except (ApplyFailed, EngineError, OSError) as exc:
            message = str(exc)
            log.error("apply failed", extra={"error": message})
            if head is not None:
                self.store.record_applied(head.number, ok=False, message=message)
                # Nothing may be running at all (a daemon restarted on a revision HAProxy
                # refuses): make sure the last good revision serves meanwhile.
                applied = self.store.applied()
                if applied is not None and applied.last_good is not None:
                    await self._converge_on_last_good(applied.last_good)
            return False, message
        if head is not None:
            applied = self.store.applied()
            if applied is None or applied.last_attempt != head.number or not applied.ok:
                self.store.record_applied(head.number, ok=True, message="")
        return True, ""

    async def _execute(self, current: _FullPlan, desired: Configuration) -> None:
        for ensure in current.ensure:
            await self.vips.ensure(ensure.address, ensure.interface)
        for engine, engine_plan in current.engines:
            if engine_plan.empty:
                continue
            await engine.execute(engine_plan.actions, self._applied[engine.name])
            if engine_plan.reloads:
                self._applied[engine.name] = for_mode(desired, engine.mode)
        for remove in current.remove:
            await self.vips.remove(remove.address)

    def adopt(self, engine: str, applied: Configuration | None) -> None:
        """Tell the service which document a running engine was started from."""
        self._applied[engine] = applied

    # -- DSR real-server help ----------------------------------------------------------------------

    def dsr_service(self, name: str) -> VirtualService:
        """The current revision's service ``name``; NotApplicable unless it forwards by DSR."""
        vs = next((vs for vs in self.desired().virtual_services if vs.name == name), None)
        if vs is None:
            raise NotFound(f"there is no virtual service named {name!r}")
        if not is_dsr(vs):
            raise NotApplicable(
                f"virtual service {name!r} is mode {vs.mode.value}, forwarding "
                f"{vs.forwarding.value}: DSR help is for mode: l4 with forwarding: dsr"
            )
        return vs

    def dsr_script(self, name: str, target: TargetOs = TargetOs.linux) -> str:
        """The commands ``target``'s real servers of the DSR service ``name`` need."""
        return script(self.dsr_service(name), target)

    async def dsr_verify(self, name: str) -> DsrReport:
        """Check on the wire that each real server of ``name`` is ready for DSR."""
        return await self.dsr_verifier.verify(self.dsr_service(name))

    # -- persistence tables ----------------------------------------------------------------------

    def _persistence_engine(self, name: str) -> tuple[PersistenceTables, Configuration | None]:
        vs = next((vs for vs in self.desired().virtual_services if vs.name == name), None)
        if vs is None:
            raise NotFound(f"there is no virtual service named {name!r}")
        for engine in self.engines:
            if engine.mode is vs.mode and isinstance(engine, PersistenceTables):
                return engine, self._applied[engine.name]
        raise NotApplicable(
            f"virtual service {name!r} is mode {vs.mode.value}: persistence tables are listed "
            "for mode l7 services"
        )

    async def persistence(self, name: str) -> list[PersistenceEntry]:
        """The clients ``name`` keeps on a real server (its stick-table entries)."""
        engine, applied = self._persistence_engine(name)
        return await engine.persistence(applied, name)

    async def clear_persistence(self, name: str) -> int:
        """Forget every persisted client of ``name``; how many entries there were."""
        engine, applied = self._persistence_engine(name)
        async with self._lock:
            return await engine.clear_persistence(applied, name)

    # -- status ----------------------------------------------------------------------------------

    async def observe(self) -> EngineObservation:
        """What every engine reports now (health, check times, counters), merged."""
        observations = []
        for engine in self.engines:
            observation = await engine.observe(self._applied[engine.name])
            observations.append((observation, False))
        return merge_observations(observations)

    async def status(self) -> StatusReport:
        head = self.store.head()
        applied = self.store.applied()
        desired = self._desired_of(head)
        observations = []
        engine_info: dict[str, Any] = {}
        for engine in self.engines:
            observation = await engine.observe(self._applied[engine.name])
            has_services = bool(for_mode(desired, engine.mode).virtual_services)
            observations.append((observation, has_services))
            engine_info[engine.name] = await engine.info()
        apply_ok = applied is None or applied.ok
        return build_status(
            desired,
            merge_observations(observations),
            revision=head.number if head else None,
            applied_revision=applied.last_good if applied else None,
            apply_ok=apply_ok,
            apply_message="" if apply_ok or applied is None else applied.message,
            engine=engine_info,
            overrides=self._overrides(),
        )


@dataclass(frozen=True, kw_only=True)
class _FullPlan:
    """VIPs to add, each engine's plan, VIPs to remove: executed in that order."""

    ensure: tuple[EnsureVip, ...]
    engines: tuple[tuple[Engine, Plan], ...]
    remove: tuple[RemoveVip, ...]

    @property
    def empty(self) -> bool:
        return not self.ensure and not self.remove and all(p.empty for _, p in self.engines)

    @property
    def reloads(self) -> bool:
        return any(p.reloads for _, p in self.engines)

    def descriptions(self) -> tuple[str, ...]:
        lines = [describe(a) for a in self.ensure]
        for engine, engine_plan in self.engines:
            lines.extend(f"{engine.name}: {describe(a)}" for a in engine_plan.actions)
        lines.extend(describe(a) for a in self.remove)
        return tuple(lines)
