"""The page store: the pages a service answers with when nothing is available, by name.

Like the certificate store: the rows of ``bascule.db`` (table ``pages``) are the truth, the
document only names a page (``not_available.respond.body_file``), and the files HAProxy reads
are derived (``write_files``: ``<name>.html``, 0644 in the pages directory, written under a
temporary name and renamed). A page is served as ``text/html; charset=utf-8``. HAProxy
reads a page when it loads its configuration (``http-request return ... file``), so a page
cannot be replaced while it serves: add one under a new name and point the service at it.

A page is UTF-8 text without control characters other than tab, CR and LF, at most
``MAX_PAGE_BYTES``: HAProxy answers it from one buffer (``tune.bufsize`` 16384, less the
headers and the rewrite reserve).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from bascule.errors import InvalidCertificate, NotFound, StoreError
from bascule.model.rules import page_file_name
from bascule.model.types import Name
from bascule.store.database import Database, transaction

MAX_PAGE_BYTES = 12 * 1024
_NAME: TypeAdapter[str] = TypeAdapter(Name)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class InvalidPage(InvalidCertificate):
    """A page, or its name, is refused; ``errors`` name the input at fault (``name``,
    ``content``, ``content_type``)."""


@dataclass(frozen=True, kw_only=True)
class StoredPage:
    name: str
    size: int
    created_at: datetime


def check_name(name: str) -> str:
    try:
        return _NAME.validate_python(name)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise InvalidPage("name", reason) from None


def check_content(content: bytes) -> str:
    """The page as text, or ``InvalidPage`` on ``content`` saying why not."""
    if not content:
        raise InvalidPage("content", "the page is empty")
    if len(content) > MAX_PAGE_BYTES:
        raise InvalidPage(
            "content",
            f"the page is {len(content)} bytes; at most {MAX_PAGE_BYTES} (HAProxy answers "
            "it from one buffer)",
        )
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPage("content", f"the page is not UTF-8 text (byte {exc.start})") from None
    bad = _CONTROL.search(text)
    if bad is not None:
        raise InvalidPage(
            "content",
            f"the page holds a control character ({ord(bad.group()):#04x}) at offset "
            f"{bad.start()}: text only (tab, CR and LF allowed)",
        )
    return text


class PageStore(Database):
    """The ``pages`` table of ``bascule.db``."""

    def entries(self) -> list[StoredPage]:
        with self._use("list the pages") as db:
            rows = db.execute(
                "SELECT name, length(CAST(content AS BLOB)), created_at FROM pages ORDER BY name"
            ).fetchall()
        return [_page(row) for row in rows]

    def entry(self, name: str) -> StoredPage | None:
        return next((page for page in self.entries() if page.name == name), None)

    def content(self, name: str) -> str:
        with self._use(f"read the page {name}") as db:
            row = db.execute("SELECT content FROM pages WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"there is no page named {name!r} in the page store")
        return str(row[0])

    def add(self, name: str, content: bytes, *, at: datetime) -> StoredPage:
        """Add a page; a name already used is refused."""
        check_name(name)
        text = check_content(content)
        with self._use(f"add the page {name}") as db, transaction(db):
            if db.execute("SELECT 1 FROM pages WHERE name = ?", (name,)).fetchone():
                raise InvalidPage(
                    "name",
                    f"{name} is already in the page store: choose another name (a page "
                    "cannot be replaced while a service may serve it)",
                )
            db.execute(
                "INSERT INTO pages (name, content, created_at) VALUES (?, ?, ?)",
                (name, text, at.astimezone(UTC).isoformat()),
            )
        page = self.entry(name)
        assert page is not None
        return page

    def restore(self, pages: Mapping[str, str], *, at: datetime) -> None:
        """Put ``pages`` (name -> checked text) back from a backup, in one transaction: a
        page of the same name is replaced (the restored document is what will serve it), the
        others are kept."""
        with self._use("restore the pages") as db, transaction(db):
            db.executemany(
                "INSERT INTO pages (name, content, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET content = excluded.content, "
                "created_at = excluded.created_at",
                [(name, text, at.astimezone(UTC).isoformat()) for name, text in pages.items()],
            )

    def delete(self, name: str) -> None:
        """Remove a page. Whether a service still names it is the caller's check."""
        with self._use(f"delete the page {name}") as db, transaction(db):
            if db.execute("DELETE FROM pages WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"there is no page named {name!r} in the page store")

    def write_files(self, directory: Path) -> dict[str, Path]:
        """Write every page as the file HAProxy reads; remove the others. name -> path."""
        with self._use("read the pages for the engines") as db:
            rows = db.execute("SELECT name, content FROM pages").fetchall()
        wanted = {
            name: (directory / page_file_name(name), str(content).encode())
            for name, content in rows
        }
        try:
            directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            for path, data in wanted.values():
                temporary = path.with_name(f".{path.name}.tmp")
                temporary.write_bytes(data)
                temporary.chmod(0o644)
                os.replace(temporary, path)
            kept = {path for path, _ in wanted.values()}
            for stale in directory.iterdir():
                if stale not in kept and stale.is_file():
                    with contextlib.suppress(FileNotFoundError):
                        stale.unlink()
        except OSError as exc:
            raise StoreError(f"cannot write the pages to {directory}: {exc}") from exc
        return {name: path for name, (path, _) in wanted.items()}


def _page(row: tuple[str, int, str]) -> StoredPage:
    name, size, created = row
    return StoredPage(name=name, size=size, created_at=datetime.fromisoformat(created))
