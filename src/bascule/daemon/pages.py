"""The page store as the doors see it: add, list, show and delete pages; check documents.

A page (store/pages.py) is what ``not_available.respond.body_file`` names. This service keeps
the store's files where HAProxy reads them, refuses a document that names a page the store
does not hold (``document_problems``, a field error on ``body_file``), and refuses to delete
a page a service names. Changes are serialized with the engines' lock (a document naming a
page cannot be committed while the page is being deleted) and recorded in the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bascule.daemon.audit import AuditOutcome, AuditService
from bascule.daemon.service import ConfigService
from bascule.errors import BasculeError, FieldError, InvalidConfiguration, NotFound
from bascule.model import Configuration
from bascule.model.access import Actor
from bascule.store.pages import InvalidPage, PageStore, StoredPage, check_content, check_name

#: The section of a backup file that carries the page store (daemon/backup.py).
PAGE_STORE = "page_store"

Clock = Callable[[], datetime]


@dataclass(frozen=True, kw_only=True)
class PageDetails:
    name: str
    size: int
    created_at: datetime
    used_by: tuple[str, ...]  # the services (or sub-services' services) that name it


class PageService:
    """The page store, its files for HAProxy, and the checks of a document."""

    def __init__(
        self,
        store: PageStore,
        *,
        directory: Path,
        config: ConfigService,
        audit: AuditService,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.directory = directory
        self.config = config
        self.audit = audit
        self.clock = clock
        self._restoring: frozenset[str] = frozenset()  # a backup's pages, while it is planned

    # -- reading ------------------------------------------------------------------------------

    def entries(self) -> list[PageDetails]:
        usage = _usage(self.config.desired())
        return [_details(page, usage) for page in self.store.entries()]

    def show(self, name: str) -> tuple[PageDetails, str]:
        """The page's details and its content."""
        page = self.store.entry(name)
        if page is None:
            raise NotFound(f"there is no page named {name!r} in the page store")
        return _details(page, _usage(self.config.desired())), self.store.content(name)

    # -- changing -----------------------------------------------------------------------------

    async def add(self, name: str, content: bytes, *, actor: Actor) -> PageDetails:
        try:
            async with self.config.reconciler.lock:
                page = self.store.add(name, content, at=self.clock())
                await self._write_files()
        except BasculeError as exc:
            refused = AuditOutcome.refused
            self.audit.record(actor, "page.add", name, outcome=refused, detail=str(exc))
            raise
        self.audit.record(actor, "page.add", name, detail=f"{page.size} bytes")
        return _details(page, {})

    async def delete(self, name: str, *, actor: Actor) -> None:
        """Remove a page; refused while a service names it."""
        try:
            async with self.config.reconciler.lock:
                check_name(name)
                if self.store.entry(name) is None:
                    raise NotFound(f"there is no page named {name!r} in the page store")
                users = _usage(self.config.desired()).get(name, ())
                if users:
                    plural = len(users) > 1
                    raise InvalidPage(
                        "name",
                        f"{name} is used by virtual service{'s' if plural else ''} "
                        f"{', '.join(users)}: change {'them' if plural else 'it'} first",
                    )
                self.store.delete(name)
                await self._write_files()
        except BasculeError as exc:
            refused = AuditOutcome.refused
            self.audit.record(actor, "page.delete", name, outcome=refused, detail=str(exc))
            raise
        self.audit.record(actor, "page.delete", name, detail="deleted")

    # -- backups ------------------------------------------------------------------------------

    def export(self) -> list[dict[str, str]]:
        """Every page with its content, for a backup file's ``page_store`` section."""
        return [
            {"name": page.name, "content": self.store.content(page.name)}
            for page in self.store.entries()
        ]

    def check_backup(self, section: object) -> dict[str, str]:
        """A backup's ``page_store`` section as name -> text, every page checked as an
        upload is; ``InvalidConfiguration`` names each entry at fault."""
        if not isinstance(section, list):
            raise InvalidConfiguration(
                [FieldError(path=PAGE_STORE, message="must be a list of {name, content}")]
            )
        pages: dict[str, str] = {}
        errors: list[FieldError] = []
        for index, entry in enumerate(section):
            where = f"{PAGE_STORE}[{index}]"
            name = entry.get("name") if isinstance(entry, Mapping) else None
            content = entry.get("content") if isinstance(entry, Mapping) else None
            if not isinstance(name, str) or not isinstance(content, str):
                errors.append(FieldError(path=where, message="must be {name, content} (text)"))
                continue
            if name in pages:
                errors.append(FieldError(path=f"{where}.name", message=f"{name} is twice"))
                continue
            try:
                pages[check_name(name)] = check_content(content.encode())
            except InvalidPage as exc:
                errors.extend(
                    FieldError(path=f"{where}.{e.path}", message=e.message) for e in exc.errors
                )
        if errors:
            raise InvalidConfiguration(errors)
        return pages

    @contextlib.contextmanager
    def restoring(self, names: frozenset[str]) -> Iterator[None]:
        """While a restore is planned (a dry run): the backup's pages count as stored."""
        self._restoring = names
        try:
            yield
        finally:
            self._restoring = frozenset()

    async def restore(self, section: object, *, actor: Actor) -> str:
        """Put a backup's pages back (a page of the same name is replaced, the others kept)
        and write HAProxy's files; says what it did."""
        pages = self.check_backup(section)
        async with self.config.reconciler.lock:
            self.store.restore(pages, at=self.clock())
            await self._write_files()
        said = f"{len(pages)} page{'' if len(pages) == 1 else 's'} of the page store restored"
        self.audit.record(actor, "page.restore", ", ".join(sorted(pages)) or "-", detail=said)
        return said

    async def prepare(self) -> None:
        """At the daemon's start: write every page before HAProxy reads them."""
        await self._write_files()

    async def _write_files(self) -> None:
        await asyncio.to_thread(self.store.write_files, self.directory)

    # -- the document -------------------------------------------------------------------------

    def document_problems(self, config: Configuration) -> list[FieldError]:
        """Every ``body_file`` of ``config`` that names no page of the store."""
        stored = {page.name for page in self.store.entries()} | self._restoring
        return [
            FieldError(
                path=f"virtual_services[{index}].not_available.respond.body_file",
                message=f"there is no page {name} in the page store: add it first "
                f"(bascule page add {name} --file FILE.html)",
            )
            for index, _, name in _body_files(config)
            if name not in stored
        ]


def _body_files(config: Configuration) -> Iterator[tuple[int, str, str]]:
    """(service index, service name, page name) of every ``body_file`` of ``config``."""
    for index, vs in enumerate(config.virtual_services):
        respond = vs.not_available.respond if vs.not_available is not None else None
        if respond is not None and respond.body_file is not None:
            yield index, vs.name, respond.body_file


def _usage(config: Configuration) -> dict[str, tuple[str, ...]]:
    usage: dict[str, list[str]] = {}
    for _, service, name in _body_files(config):
        usage.setdefault(name, []).append(service)
    return {name: tuple(services) for name, services in usage.items()}


def _details(page: StoredPage, usage: dict[str, tuple[str, ...]]) -> PageDetails:
    return PageDetails(
        name=page.name,
        size=page.size,
        created_at=page.created_at,
        used_by=usage.get(page.name, ()),
    )
