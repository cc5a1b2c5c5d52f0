"""The configuration document's schema version, and the migrations that bring older documents
forward (pure).

A document carries ``schema_version`` (``bascule export`` writes it). When the shape of the
document changes in a way an older document would read differently, the version goes up by
one and a migration is appended to ``MIGRATIONS``: a pure function from a document of version
N to one of version N + 1 that means the same. ``parse_document`` runs ``migrate`` first, so
every door accepts an older document (an exported file, a backup, a stored revision), and the
store's revisions are read forward whatever version wrote them; the history itself is never
rewritten. A document from a newer Bascule is refused, with the versions named: this one
cannot know what its fields mean.

A document without ``schema_version`` is read as version 1, the shape before the version
existed. People write documents without it, in whatever shape is current, so every migration
must leave a document that is already in its newer shape unchanged.

Versions:

1. The first shape (no ``schema_version``). ``persistence.source_mask`` (1..128) was the
   prefix length for either family (an IPv4 service used at most 32).
2. Dual-stack services (``address6``): ``source_mask`` is the IPv4 prefix length (1..32) and
   ``source_mask6`` the IPv6 one (1..128, default 128). An IPv6 service's ``source_mask``
   becomes its ``source_mask6``; the version 1 default, 32, which grouped clients by /32 of
   the IPv6 space (billions of networks as one client), becomes 128, one address per
   client, which is what it meant for IPv4.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bascule.errors import FieldError, InvalidConfiguration

Document = dict[str, Any]

#: The version this Bascule writes; documents up to it are read.
SCHEMA_VERSION = 2
FIELD = "schema_version"


def _source_mask_per_family(document: Document) -> Document:
    """1 -> 2: an IPv6 service's ``source_mask`` becomes its ``source_mask6``."""
    services = document.get("virtual_services")
    if not isinstance(services, list):
        return document
    migrated = []
    for vs in services:
        persistence = vs.get("persistence") if isinstance(vs, dict) else None
        address = vs.get("address") if isinstance(vs, dict) else None
        if (
            isinstance(persistence, dict)
            and isinstance(address, str)
            and ":" in address
            and "source_mask" in persistence
            and "source_mask6" not in persistence
        ):
            persistence = dict(persistence)
            mask = persistence.pop("source_mask")
            persistence["source_mask6"] = 128 if mask == 32 else mask
            vs = {**vs, "persistence": persistence}
        migrated.append(vs)
    return {**document, "virtual_services": migrated}


#: ``MIGRATIONS[n - 1]`` takes a document from version n to n + 1; never edited once released.
MIGRATIONS: tuple[Callable[[Document], Document], ...] = (_source_mask_per_family,)

if len(MIGRATIONS) != SCHEMA_VERSION - 1:  # pragma: no cover - a mistake in this file
    raise RuntimeError("one migration per schema version after the first")


def version_of(document: Mapping[str, Any]) -> int:
    """The schema version a document says it has (1 when it says none); raises
    InvalidConfiguration when it is not a version at all."""
    version = document.get(FIELD, 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidConfiguration(
            [FieldError(path=FIELD, message="must be a schema version: 1 or more")]
        )
    return version


def newer_message(version: int) -> str:
    return (
        f"{version} is newer than this Bascule reads (up to {SCHEMA_VERSION}): the document "
        "was written by a newer Bascule; upgrade this one"
    )


def migrate(document: Mapping[str, Any]) -> Document:
    """``document`` in the current schema version (a copy); InvalidConfiguration for a
    document of a newer version."""
    version = version_of(document)
    if version > SCHEMA_VERSION:
        raise InvalidConfiguration([FieldError(path=FIELD, message=newer_message(version))])
    migrated = dict(document)
    for step in MIGRATIONS[version - 1 :]:
        migrated = step(migrated)
    migrated[FIELD] = SCHEMA_VERSION
    return migrated
