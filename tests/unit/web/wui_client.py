"""Helpers of the WUI tests: a logged-in client, the CSRF token of a page, an HTML check."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx
from fastapi import FastAPI

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics
from bascule.engines.base import EngineObservation, FakeEngine, Health
from bascule.model import Configuration
from bascule.web import WebServices, create_wui

PASSWORD = "correct horse battery"
BASE_URL = "https://bascule.test"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Browser:
    """A logged-in client and the CSRF token of its session."""

    client: httpx.AsyncClient
    csrf: str

    async def post(self, url: str, data: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post(url, data={"csrf_token": self.csrf, **(data or {})})


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no csrf_token field in the page"
    return match[1]


_VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr",
}  # fmt: skip
# SVG's self-closing elements come through handle_startendtag


class _Checker(HTMLParser):
    """Balanced tags, unique ids, every field-<x> input followed by nothing but its own error."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, tuple[int, int]]] = []
        self.problems: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._id(attrs)
        if tag not in _VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._id(attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            opened = self.stack[-1] if self.stack else None
            self.problems.append(f"</{tag}> at {self.getpos()} closes {opened}")
            return
        self.stack.pop()

    def _id(self, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value is not None:
                if value in self.ids:
                    self.problems.append(f"duplicate id {value!r} at {self.getpos()}")
                self.ids.add(value)


def well_formed(html: str) -> None:
    """Fail with the problems if ``html`` is not well-formed enough for a browser test."""
    checker = _Checker()
    checker.feed(html)
    checker.close()
    problems = checker.problems + [f"<{tag}> at {pos} never closed" for tag, pos in checker.stack]
    assert not problems, "\n".join(problems)


class CheckedFakeEngine(FakeEngine):
    """The FakeEngine, with health checks: every server is up unless a test says otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.health: dict[tuple[str, str], str] = {}

    def set_health(self, vs: str, server: str, health: str) -> None:
        self.health[(vs, server)] = health

    async def observe(
        self, applied: Configuration | None, *, counters: bool = True
    ) -> EngineObservation:
        seen = await super().observe(applied, counters=counters)
        servers = {
            ref: dataclasses.replace(
                observation,
                health=Health(self.health.get(ref, "up")),
                check_result="L7OK" if self.health.get(ref, "up") == "up" else "L4CON",
                check_code=200 if self.health.get(ref, "up") == "up" else None,
                check_duration_ms=3,
                current_connections=2,
            )
            for ref, observation in seen.servers.items()
        }
        return dataclasses.replace(seen, servers=servers)


def given(value: Any) -> Any:
    """A stored (normalised) fragment without its empty fields."""
    if isinstance(value, dict):
        return {k: given(v) for k, v in value.items() if v not in (None, False)}
    return value


def wui_over(
    service: ConfigService,
    accounts: AccountService,
    audit: AuditService,
    statistics: Statistics,
    **companions: Any,
) -> FastAPI:
    """The WUI over the test's services and the ``companions`` a module adds (``pages=``,
    ``http_users=``...: the fields of WebServices)."""

    async def system() -> dict[str, Any]:
        return {"engines": {"fake": {"version": "1", "running": True}}}

    return create_wui(
        WebServices(
            config=service,
            accounts=accounts,
            audit=audit,
            statistics=statistics,
            system=system,
            **companions,
        )
    )
