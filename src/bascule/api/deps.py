"""What a route handler may ask for: the services, the caller, the change it asks for.

Every request reaches the service layer through these dependencies, so cross-cutting concerns
live here and not in handlers: who the caller is and what they may do (``auth``: an ``Actor``
with a role; ``Reader``, ``Operator``, ``Configurer``, ``Administrator`` refuse the others).
A write takes one ``ChangeRequest`` (daemon/changes.py): the actor, checked for the route's
permission, the revision the write was based on (``If-Match``, see ``etags``; read only once
the permission is checked, so a role that may not write gets 403 whatever it sent) and, for the
writes that accept them, the ``message`` and ``dry_run`` query parameters. The service layer
records the actor in the history (its name) and the audit log (name, role, address)::

    ConfigureChange   configure, with ?message= and ?dry_run=   (documents, services, servers)
    FieldChange       read, with ?message= and ?dry_run=        (a real server's PATCH: the
                                                                 handler names the permission
                                                                 its fields need: ChangeFor)
    ConfigureAction   configure                                 (rollback, restore, plan)
    OperateAction     operate                                   (enable, disable, drain)

Handlers use the ``Annotated`` aliases below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Body, Depends, Header, Query, Request

from bascule.api.auth import ActorDep, Administrator, Configurer, Operator, Reader, check
from bascule.api.etags import parse_if_match
from bascule.daemon.accounts import AccountService
from bascule.daemon.acme import AcmeService
from bascule.daemon.audit import AuditService
from bascule.daemon.certificates import CertificateService
from bascule.daemon.changes import ChangeRequest
from bascule.daemon.doors import StopDaemon
from bascule.daemon.ha import HaService
from bascule.daemon.http_users import HttpUserService
from bascule.daemon.pages import PageService
from bascule.daemon.request_logs import RequestLogFile
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics
from bascule.model.access import Actor, Permission

SystemProbe = Callable[[], Awaitable[dict[str, Any]]]

__all__ = ["ActorDep", "Administrator", "ApiServices", "Configurer", "Operator", "Reader"]


@dataclass(frozen=True, kw_only=True)
class ApiServices:
    """What the daemon hands the API: the service layer, its companions and a probe of the
    running system."""

    config: ConfigService
    system: SystemProbe  # engine versions and state, as the daemon knows them
    accounts: AccountService
    audit: AuditService
    statistics: Statistics
    stop: StopDaemon | None = None  # None: this app cannot stop its daemon (tests)
    certificates: CertificateService | None = None  # the certificate store (daemon/certificates.py)
    acme: AcmeService | None = None  # ACME orders and renewal (daemon/acme.py)
    ha: HaService | None = None  # this node of the HA pair (daemon/ha.py)
    request_logs: RequestLogFile | None = None  # HAProxy's request logs (daemon/request_logs.py)
    pages: PageService | None = None  # the page store (daemon/pages.py)
    http_users: HttpUserService | None = None  # basic auth users (daemon/http_users.py)


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


def get_config_service(request: Request) -> ConfigService:
    return get_services(request).config


def get_system_probe(request: Request) -> SystemProbe:
    return get_services(request).system


def get_accounts(request: Request) -> AccountService:
    return get_services(request).accounts


def get_audit(request: Request) -> AuditService:
    return get_services(request).audit


IfMatch = Annotated[
    str | None,
    Header(
        description='The revision the change is based on: "3" (quotes optional); '
        '"0" or none for an empty store. Without it the change applies to the current '
        "revision, whatever it is.",
    ),
]
"""The raw ``If-Match`` header: parsed (and bounded) by the change dependencies, after the
caller's permission is checked, so a role that may not write is told 403 whatever it sent."""


ServicesDep = Annotated[ApiServices, Depends(get_services)]
ConfigServiceDep = Annotated[ConfigService, Depends(get_config_service)]
SystemProbeDep = Annotated[SystemProbe, Depends(get_system_probe)]
AccountServiceDep = Annotated[AccountService, Depends(get_accounts)]
AuditServiceDep = Annotated[AuditService, Depends(get_audit)]

DryRun = Annotated[
    bool, Query(description="Validate, check and plan the change, but commit and apply nothing")
]
Message = Annotated[
    str | None,
    Query(description="Why: recorded with the revision (one line, at most 1000 characters)"),
]


def configure_change(
    actor: Configurer, if_match: IfMatch = None, dry_run: DryRun = False, message: Message = None
) -> ChangeRequest:
    """A structural change, with the ``message`` and ``dry_run`` query parameters."""
    return ChangeRequest(
        actor=actor, base=parse_if_match(if_match), message=message or "", dry_run=dry_run
    )


@dataclass(frozen=True, kw_only=True)
class ChangeFor:
    """A change whose permission depends on what it changes (a real server's PATCH: a weight
    alone needs ``operate``, anything else ``configure``): the handler names the permission,
    and only then are ``If-Match`` and the message read (so a 403 comes before any 422)."""

    actor: Actor
    if_match: str | None
    message: str
    dry_run: bool

    def __call__(self, permission: Permission) -> ChangeRequest:
        check(self.actor, permission)
        return ChangeRequest(
            actor=self.actor,
            base=parse_if_match(self.if_match),
            message=self.message,
            dry_run=self.dry_run,
        )


def field_change(
    actor: Reader, if_match: IfMatch = None, dry_run: DryRun = False, message: Message = None
) -> ChangeFor:
    """``configure_change`` for a route whose permission depends on the fields it changes."""
    return ChangeFor(actor=actor, if_match=if_match, message=message or "", dry_run=dry_run)


def configure_action(actor: Configurer, if_match: IfMatch = None) -> ChangeRequest:
    """A structural change the route names itself (no ``message``; no dry run unless the
    route has its own parameter)."""
    return ChangeRequest(actor=actor, base=parse_if_match(if_match))


def operate_action(actor: Operator, if_match: IfMatch = None) -> ChangeRequest:
    """An operator's change the route names itself (enable, disable, drain)."""
    return ChangeRequest(actor=actor, base=parse_if_match(if_match))


ConfigureChange = Annotated[ChangeRequest, Depends(configure_change)]
FieldChange = Annotated[ChangeFor, Depends(field_change)]
ConfigureAction = Annotated[ChangeRequest, Depends(configure_action)]
OperateAction = Annotated[ChangeRequest, Depends(operate_action)]

DocumentBody = Annotated[
    dict[str, Any],
    Body(description="A configuration document, validated as a whole by the service layer"),
]
VirtualServiceBody = Annotated[
    dict[str, Any], Body(description="One virtual service, as in the configuration document")
]
RealServerBody = Annotated[
    dict[str, Any], Body(description="One real server, as in the configuration document")
]
ChangesBody = Annotated[
    dict[str, Any],
    Body(description="Fields to change; nested mappings merge, lists and values replace"),
]
