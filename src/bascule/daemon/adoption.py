"""What a start takes over: the stored revisions, and the engines a previous daemon left.

Where it sits: at the daemon's start (runner.py), before the first reconcile: the current
revision must be readable by this version (``check_stored_revisions``: an older document is
read forward, a newer one stops the start before any engine is touched), then each engine
still running is adopted with its share of the last good revision (``adopt_engines``,
``last_good``), so a restart or an upgrade of the daemon costs no request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bascule.daemon.service import ConfigService
from bascule.engines.base import share_of
from bascule.errors import BasculeError, StoreError
from bascule.model import Configuration, Mode, parse_document
from bascule.model.document import for_mode
from bascule.model.schema import SCHEMA_VERSION
from bascule.store.revisions import RevisionStore

log = logging.getLogger("bascule.daemon")


def check_stored_revisions(store: RevisionStore) -> None:
    """Before anything starts: the current revision must be readable by this version.

    Revisions written by an older Bascule are read forward (model/schema.py; logged, so an
    upgrade's start says what it migrated); one written by a newer Bascule stops the start
    with the store's message naming both versions, before any engine is touched.
    """
    versions = store.schema_versions()
    older = {version: count for version, count in versions.items() if version < SCHEMA_VERSION}
    if older:
        log.info(
            "revisions of older document schemas are read forward",
            extra={"schema_version": SCHEMA_VERSION, "older": older},
        )
    try:
        store.head()
    except StoreError as exc:
        raise BasculeError(
            f"cannot start: {exc} (restore a backup made by this version, or run the newer Bascule)"
        ) from exc


async def adopt_engines(
    service: ConfigService,
    last_good: Configuration | None,
    *,
    l4_adopted: Callable[[Configuration], Awaitable[None]],
) -> list[str]:
    """Take over what a previous daemon left running; the names of the engines adopted.

    Each engine that still runs was started from the last good revision (its share of it).
    The L4 health checker then starts the adopted ``l4`` servers up (``l4_adopted``), so that
    none leaves the tables while its first checks run.
    """
    adopted = [engine for engine in service.engines if await engine.adopt()]
    for engine in adopted:
        service.adopt(engine.name, share_of(engine, last_good) if last_good else None)
    if last_good is not None and any(engine.mode is Mode.l4 for engine in adopted):
        await l4_adopted(for_mode(last_good, Mode.l4))
    return [engine.name for engine in adopted]


def last_good(store: RevisionStore) -> Configuration | None:
    applied = store.applied()
    if applied is None or applied.last_good is None:
        return None
    try:
        return parse_document(store.get(applied.last_good).document)
    except (BasculeError, StoreError):
        return None
