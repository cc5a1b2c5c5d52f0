"""Fixtures shared by the unit tests of the doors (API, CLI): the daemon's services over tmp
stores, as the composition root wires them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from bascule.api import ApiServices
from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.daemon.certificates import CertificateService
from bascule.daemon.http_users import HttpUserService
from bascule.daemon.pages import PageService
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics
from bascule.pki import keyset
from bascule.store.accounts import AccountStore
from bascule.store.audit import AuditStore
from bascule.store.certificates import CertificateStore
from bascule.store.http_users import HttpUserStore
from bascule.store.pages import PageStore

System = Callable[[], Awaitable[dict[str, Any]]]

#: argon2 at its cheapest: tests hash many passwords; the parameters are not under test.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


async def no_system() -> dict[str, Any]:
    return {}


class StopRecorder:
    """A daemon's ``stop`` that records what it was asked (``POST /system/stop``)."""

    def __init__(self) -> None:
        self.requests: list[bool] = []

    def __call__(self, *, data_plane: bool) -> None:
        self.requests.append(data_plane)


@pytest.fixture(autouse=True)
def cheap_sealing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backups seal keys and hashes with scrypt at ``keyset.DEFAULT_COST`` (128 MiB, about half
    a second a derivation); the cost is not under test but in tests/unit/pki/test_keyset.py,
    which overrides this fixture."""
    monkeypatch.setattr(keyset, "DEFAULT_COST", 2**10)


@pytest.fixture
def fast_hasher() -> PasswordHasher:
    return FAST_HASHER


@pytest.fixture
def make_api_services() -> Iterator[Callable[..., ApiServices]]:
    """``make(config, system=..., database=...)``: ApiServices around ``config``, with accounts
    and audit in ``database`` (default: the file of ``config``'s revision store, where its commits
    write their audit entries). The audit service is attached to ``config`` unless it already
    has one."""
    with ExitStack() as stack:

        def make(
            config: ConfigService, system: System = no_system, *, database: Path | None = None
        ) -> ApiServices:
            # the audit log in the revisions' database: a commit writes its entry there
            path = database or config.store.path
            audit = AuditService(stack.enter_context(AuditStore(path)))
            if config.audit is None:
                config.audit = audit
            accounts = AccountService(
                stack.enter_context(AccountStore(path)),
                idle_timeout=900,
                lockout_attempts=5,
                lockout_seconds=300,
                audit=audit,
                hasher=FAST_HASHER,
            )
            certificates = CertificateService(
                stack.enter_context(CertificateStore(path)),
                directory=path.parent / "certificates",
                config=config,
                audit=audit,
            )
            pages = PageService(
                stack.enter_context(PageStore(path)),
                directory=path.parent / "pages",
                config=config,
                audit=audit,
            )
            http_users = HttpUserService(
                stack.enter_context(HttpUserStore(path)), config=config, audit=audit
            )
            config.attach_certificates(
                lambda c: [
                    *certificates.document_problems(c),
                    *pages.document_problems(c),
                    *http_users.document_problems(c),
                ],
                certificates.alerts,
            )
            return ApiServices(
                config=config,
                system=system,
                accounts=accounts,
                audit=audit,
                statistics=Statistics(config.status, interval=10),
                stop=StopRecorder(),
                certificates=certificates,
                pages=pages,
                http_users=http_users,
            )

        yield make
