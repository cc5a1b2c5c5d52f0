"""The operate path: weights and states of real servers at the cost of what they touch.

A branch of the flow of a change (daemon/changes.py) for the commonest changes of all: a
weight, a drain, an enable or a disable of one real server, or of all those a bulk operation
names (``bascule rs drain --address ...``). At 1,000 services of 10 servers the ordinary flow
validated, dumped, diffed, stored and planned the whole document for each (seconds, issue
15); here, under the same lock and with the same invariants:

    base revision check -> reconcile/operations.py (the touched servers validated, the new
    document and configuration sharing the rest with the head's, the diff of the touched
    services) -> store.commit_operation (one revision, its audit entry) -> the touched
    pools' runtime commands (reconcile/operations.runtime_plan) -> the pair's push

It takes a change only when the engines run the head revision as it was committed (the last
apply of the head succeeded) and the operations are ones it can judge; otherwise ``run``
answers ``None`` and the caller runs the ordinary flow, which gives the same result (or the
same error) as it always did. A runtime command that fails falls back to a full reconcile
(reconciler.py), which records and reports it as any failed apply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from bascule.daemon.changes import UNCHECKED, AuditName, ChangePipeline, ChangeRequest
from bascule.daemon.results import ApplyResult
from bascule.engines.base import Engine
from bascule.errors import BasculeError, Conflict
from bascule.reconcile.actions import Action, describe
from bascule.reconcile.diff import diff_to_json
from bascule.reconcile.operations import ServerOperation, operate, runtime_plan

log = logging.getLogger("bascule.service")


async def run(
    pipeline: ChangePipeline,
    operations: Sequence[ServerOperation],
    request: ChangeRequest,
    *,
    name: AuditName,
) -> ApplyResult | None:
    """``operations`` in one revision through the operate path, or ``None``: the ordinary
    flow must take them (see the module's doc)."""
    async with pipeline.reconciler.lock:
        try:
            result = await _run_locked(pipeline, operations, request, name)
        except BasculeError as exc:
            if not request.dry_run:
                pipeline.refused(request, name, exc)
            raise
    if result is not None:
        pipeline.settle(request, result)
    return result


async def _run_locked(
    pipeline: ChangePipeline,
    operations: Sequence[ServerOperation],
    request: ChangeRequest,
    name: AuditName,
) -> ApplyResult | None:
    if pipeline.guard is not None:
        pipeline.guard()
    store, reconciler = pipeline.store, pipeline.reconciler
    head = store.head()
    if head is None:
        return None
    base = request.base
    if base is not UNCHECKED and base != head.number:
        raise Conflict(base=base if isinstance(base, int) else None, current=head.number)
    applied = store.applied()
    if applied is None or not applied.ok or applied.last_good != head.number:
        return None  # the engines may not run the head: the whole flow plans it
    config = reconciler.parsed(head)
    if config is None:
        return None
    operated = operate(config, head.document, operations)
    if operated is None:
        return None
    plans: list[tuple[Engine, tuple[Action, ...]]] = []
    for engine in reconciler.engines:
        pools = [(old, new) for old, new in operated.pools if new.mode is engine.mode]
        if not pools:
            continue
        if reconciler.running(engine.name) is None:
            return None
        actions = runtime_plan(
            pools, max_weight=engine.max_weight, overrides=reconciler.overrides()
        )
        plans.append((engine, actions))
    diff = operated.diff
    descriptions = tuple(f"{e.name}: {describe(a)}" for e, actions in plans for a in actions)
    if request.dry_run or not diff:
        return ApplyResult(
            revision=head.number,
            changed=bool(diff),
            diff=diff,
            actions=descriptions if diff else (),
            reloads=False,
            applied=not diff,
            message="dry run: nothing was changed" if request.dry_run else "no change",
            dry_run=request.dry_run,
        )
    entry = None
    if pipeline.audit is not None:
        entry = pipeline.audit.entry(
            request.actor, name.action, name.target, diff=diff_to_json(diff), detail=request.message
        )
    # Known parsed before the commit is visible: a reader of the new head (the dynamic
    # schedulers, the status) must not parse 10,000 servers on the event loop meanwhile.
    reconciler.committed(head.number + 1, operated.config)
    try:
        revision = await asyncio.to_thread(
            store.commit_operation,
            operated.document,
            diff,
            base=head.number,
            author=request.actor.name,
            message=request.message,
            audit=entry,
        )
    except BaseException:
        reconciler.forget(head.number + 1)
        raise
    log.info(
        "committed revision",
        extra={"revision": revision.number, "author": request.actor.name, "changes": len(diff)},
    )
    ok, error = await reconciler.execute_runtime(revision, operated.config, plans)
    if pipeline.after_commit is not None:
        await pipeline.after_commit()
    return ApplyResult(
        revision=revision.number,
        changed=True,
        diff=diff,
        actions=descriptions,
        reloads=False,
        applied=ok,
        message=error,
        dry_run=False,
    )
