"""Runtime operations: weights and states of some real servers, at the cost of what they touch.

Where it sits in the flow of a change: the operate path of the change pipeline
(daemon/operations.py) hands this pure core the validated document of the head revision, its
JSON form and the operations (``ServerOperation``: one real server's ``weight`` and/or
``state``; many for a bulk drain by address). It returns what the whole flow would have
produced for the same edit, without validating, dumping or diffing the other servers:

* each changed real server validated alone (no cross-object invariant of the model reads a
  weight or a state: ``model/document.py``'s checks);
* the new ``Configuration`` and document sharing every untouched service with the head's
  (frozen models and a document nobody mutates in place);
* the diff of the touched services only, with the paths ``diff_documents`` gives the whole;
* the pools touched, to plan (``runtime_plan``) against their own runtime state.

``None`` means "not an operation this path can take": an unknown service or server, a value
the model refuses, a field other than weight and state, a ``fixed_weighting`` weight (its order
is structural). The caller then runs the ordinary flow, which gives the same answer or the
same error as before. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bascule.errors import NotFound
from bascule.model import Configuration, RealServer, Scheduler, VirtualService
from bascule.model.edits import normalise_key, server_key
from bascule.model.sub_service import POOL_SEPARATOR
from bascule.reconcile.actions import Action
from bascule.reconcile.diff import DiffItem, diff_documents
from bascule.reconcile.planner import Overrides, pool_runtime, runtime_actions

#: The fields an operation may change: what the engines' runtime APIs set.
RUNTIME_FIELDS = frozenset({"weight", "state"})


@dataclass(frozen=True, kw_only=True)
class ServerOperation:
    """Set ``changes`` (``weight`` and/or ``state``, document values) on the real server
    ``key`` (``address:port``) of ``pool`` (a service, or ``<service>/<sub-service>``)."""

    pool: str
    key: str
    changes: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Operated:
    """The head after the operations: its configuration, its document, the diff from the
    head's, and the names of the pools whose servers changed (before and after)."""

    config: Configuration
    document: dict[str, Any]
    diff: tuple[DiffItem, ...]
    pools: tuple[tuple[VirtualService, VirtualService], ...]


def operate(
    config: Configuration, document: Mapping[str, Any], operations: Sequence[ServerOperation]
) -> Operated | None:
    """``config`` and ``document`` (the same revision, validated and as stored) after
    ``operations``; ``None`` when the ordinary flow must judge them (see the module's doc)."""
    services = list(config.virtual_services)
    service_docs = document.get("virtual_services")
    if not isinstance(service_docs, list) or len(service_docs) != len(services):
        return None
    service_docs = list(service_docs)
    by_name = {vs.name: index for index, vs in enumerate(services)}
    touched: dict[int, VirtualService] = {}  # service index -> the service before
    for operation in operations:
        if not operation.changes or not set(operation.changes) <= RUNTIME_FIELDS:
            return None
        service, _, sub_name = operation.pool.partition(POOL_SEPARATOR)
        index = by_name.get(service)
        if index is None:
            return None
        touched.setdefault(index, services[index])
        changed = _operate_service(services[index], service_docs[index], sub_name, operation)
        if changed is None:
            return None
        services[index], service_docs[index] = changed
    if not touched:
        return None
    new_document = {**document, "virtual_services": service_docs}
    new_config = config.model_copy(update={"virtual_services": services})
    diff = diff_documents(
        {"virtual_services": [document["virtual_services"][i] for i in sorted(touched)]},
        {"virtual_services": [service_docs[i] for i in sorted(touched)]},
    )
    pools = tuple(
        (before, after)
        for index, old in sorted(touched.items())
        for before, after in zip(old.pools, services[index].pools, strict=True)
        if before.real_servers != after.real_servers
    )
    return Operated(config=new_config, document=new_document, diff=diff, pools=pools)


def runtime_plan(
    pools: Sequence[tuple[VirtualService, VirtualService]],
    *,
    max_weight: int,
    overrides: Overrides | None = None,
) -> tuple[Action, ...]:
    """The runtime commands that take the engine running each pool's ``before`` (as applied:
    the head was) to its ``after``. A pool's engine weights are relative to one another, so
    a weight may move its neighbours' too."""
    actions: list[Action] = []
    for before, after in pools:
        have = pool_runtime(before, max_weight=max_weight, overrides=overrides)
        wanted = pool_runtime(after, max_weight=max_weight, overrides=overrides)
        if set(have) != set(wanted):
            raise ValueError(f"pool {after.name}: an operation changed its real servers")
        actions.extend(runtime_actions(wanted, have))
    return tuple(actions)


def _operate_service(
    vs: VirtualService, vs_doc: Any, sub_name: str, operation: ServerOperation
) -> tuple[VirtualService, dict[str, Any]] | None:
    """The service and its document with one operation done, or ``None``."""
    if not isinstance(vs_doc, Mapping) or vs_doc.get("name") != vs.name:
        return None
    sub_index = -1
    if not sub_name:
        pool_doc: Any = vs_doc
        servers = vs.real_servers
        scheduler = vs.scheduler
    else:
        sub_index = next((i for i, s in enumerate(vs.sub_services) if s.name == sub_name), -1)
        sub_docs = vs_doc.get("sub_services")
        if sub_index < 0 or not isinstance(sub_docs, list) or len(sub_docs) <= sub_index:
            return None
        pool_doc = sub_docs[sub_index]
        servers = vs.sub_services[sub_index].real_servers
        scheduler = vs.sub_services[sub_index].scheduler or vs.scheduler
    if scheduler is Scheduler.fixed_weighting and "weight" in operation.changes:
        return None  # the weight order picks the active server: a structural change
    server_docs = pool_doc.get("real_servers") if isinstance(pool_doc, Mapping) else None
    if not isinstance(server_docs, list) or len(server_docs) != len(servers):
        return None
    try:
        wanted = normalise_key(operation.key)
    except NotFound:
        return None
    position = next((i for i, rs in enumerate(servers) if rs.key == wanted), None)
    if position is None:
        return None
    rs_doc = server_docs[position]
    if not isinstance(rs_doc, Mapping) or (
        server_key(rs_doc.get("address"), rs_doc.get("port")) != wanted
    ):
        return None
    try:
        server = RealServer.model_validate({**rs_doc, **operation.changes})
    except ValidationError:
        return None  # the ordinary flow says what is wrong, with the document's path
    new_servers = list(servers)
    new_servers[position] = server
    new_server_docs = list(server_docs)
    new_server_docs[position] = server.model_dump(mode="json")
    new_pool_doc = {**pool_doc, "real_servers": new_server_docs}
    if not sub_name:
        return vs.model_copy(update={"real_servers": new_servers}), new_pool_doc
    subs = list(vs.sub_services)
    subs[sub_index] = subs[sub_index].model_copy(update={"real_servers": new_servers})
    sub_docs = list(vs_doc["sub_services"])
    sub_docs[sub_index] = new_pool_doc
    return (
        vs.model_copy(update={"sub_services": subs}),
        {**vs_doc, "sub_services": sub_docs},
    )
