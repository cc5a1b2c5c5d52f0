"""Schemathesis against the served OpenAPI document: no 5xx, no response outside the schema.

Every operation of /api/v1/openapi.json (and /metrics) is called with generated requests, as
an administrator with an API token over the HTTPS app (``local=False``), on a fresh store that
holds one virtual service. Hypothesis runs derandomised (tests/conftest.py) with few examples
per operation and a fixed schemathesis seed, so the run is the same on every CI machine
and stays well under a minute.
Nothing leaves the process: the engine is the FakeEngine, ``type: auto`` detection and DSR
checks are fakes, and the app is called in-process (ASGI).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import schemathesis
from api_apps import api_app
from argon2 import PasswordHasher
from change_requests import by
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bascule.api import ApiServices
from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics
from bascule.daemon.vips import NullVipManager
from bascule.detect import ServiceProber, Verdict
from bascule.dsr.report import DsrReport
from bascule.engines.base import FakeEngine
from bascule.errors import NotApplicable
from bascule.model import VirtualService
from bascule.model.access import Actor, Role
from bascule.store.accounts import AccountStore
from bascule.store.audit import AuditStore
from bascule.store.revisions import RevisionStore

OPENAPI = "/api/v1/openapi.json"
EXAMPLES = 20

DOCUMENT = {
    "virtual_services": [
        {
            "name": "web",
            "address": "198.18.0.100",
            "port": 80,
            "real_servers": [
                {"address": "198.18.0.4", "port": 80},
                {"address": "198.18.0.5", "port": 80},
            ],
        }
    ]
}


class NoProbes(ServiceProber):
    """``type: auto`` never reaches the network here."""

    async def detect(self, vs: VirtualService) -> Verdict:
        raise NotApplicable("no detection in the fuzz test")


class NoDsrChecks:
    async def verify(self, vs: VirtualService) -> DsrReport:
        raise NotApplicable("no DSR check in the fuzz test")


class CurrentApp:
    """The ASGI app of the running test. The schema is read once, at import (schemathesis's
    lazy ``from_fixture`` loader does not work with pytest 9); each test makes its own app,
    with its own store, and points this at it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


# Serving the OpenAPI document touches no service: a placeholder stands in until a test runs.
CURRENT = CurrentApp(api_app(cast(ApiServices, SimpleNamespace()), local=False))
# Deterministic across runs and whatever ran before: a fixed seed, and no values learnt from
# earlier responses (random token ids, timestamps) fed back into the generation.
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 5,
        "phases": {
            "fuzzing": {
                "extra-data-sources": {"responses": False},
                "error-feedback": {"enabled": False},
            },
        },
    }
)
schema = schemathesis.openapi.from_asgi(OPENAPI, CURRENT, config=CONFIG)


@pytest.fixture
async def admin_headers(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """A fresh app for this test (``CURRENT``) and its administrator's token header."""
    database = tmp_path / "bascule.db"
    with (
        RevisionStore(database) as store,
        AccountStore(database) as account_store,
        AuditStore(database) as audit_store,
    ):
        audit = AuditService(audit_store)
        config = ConfigService(
            store=store, engines=[FakeEngine()], vips=NullVipManager(), audit=audit
        )
        config.detector = NoProbes()
        config.dsr_verifier = NoDsrChecks()
        await config.apply(DOCUMENT, by("fuzz"))
        accounts = AccountService(
            account_store,
            idle_timeout=900,
            lockout_attempts=5,
            lockout_seconds=300,
            audit=audit,
            # Cheap hashing: the fuzzer creates users; the parameters are not under test here.
            hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        )
        await accounts.ensure_admin("fuzz-admin-password")
        admin = Actor(name="admin", role=Role.admin, via="local", remote="test")
        _, token = accounts.create_token("fuzz", Role.admin, by=admin)
        statistics = Statistics(config.status, interval=1)
        await statistics.sample()

        async def system() -> dict[str, Any]:
            return {"engines": {"fake": {"version": "fake", "running": True}}}

        services = ApiServices(
            config=config, system=system, accounts=accounts, audit=audit, statistics=statistics
        )
        placeholder = CURRENT.app
        CURRENT.app = api_app(services, local=False)
        try:
            yield {"Authorization": f"Bearer {token}"}
        finally:
            CURRENT.app = placeholder


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        # One app per operation, shared by its examples: state carries over, as it would
        # for a real client.
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_server_error_and_no_schema_violation(
    case: schemathesis.Case, admin_headers: dict[str, str]
) -> None:
    case.call_and_validate(
        headers=admin_headers,
        checks=[
            schemathesis.checks.not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
