"""What a route handler may ask for: the services, the caller, the revision it edits.

Every request reaches the service layer through these dependencies, so cross-cutting concerns
live here and not in handlers: who the caller is and what they may do (``auth``: an ``Actor``
with a role; ``Reader``, ``Operator``, ``Configurer``, ``Administrator`` refuse the others),
and which revision a write was based on (``If-Match``, see ``etags``). A write passes
``author=actor.name, role=actor.role, remote=actor.remote`` to the service layer, which
records them in the history (the author) and the audit log (all three). Handlers use the
``Annotated`` aliases below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Body, Depends, Header, Query, Request

from bascule.api.auth import (
    ActorDep,
    Administrator,
    Configurer,
    Operator,
    Reader,
    get_actor,
)
from bascule.api.etags import parse_if_match
from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.daemon.service import Base, ConfigService
from bascule.daemon.statistics import Statistics
from bascule.model.access import Actor

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


def get_author(actor: Annotated[Actor, Depends(get_actor)]) -> str:
    """The caller's name, as the history records it (prefer an ``Actor`` alias: it carries
    the permission check and the remote address too)."""
    return actor.name


def get_base_revision(
    if_match: Annotated[
        str | None,
        Header(
            description='The revision the change is based on: "3" (quotes optional); '
            '"0" or none for an empty store. Without it the change applies to the current '
            "revision, whatever it is.",
        ),
    ] = None,
) -> Base:
    return parse_if_match(if_match)


ConfigServiceDep = Annotated[ConfigService, Depends(get_config_service)]
SystemProbeDep = Annotated[SystemProbe, Depends(get_system_probe)]
Author = Annotated[str, Depends(get_author)]
AccountServiceDep = Annotated[AccountService, Depends(get_accounts)]
AuditServiceDep = Annotated[AuditService, Depends(get_audit)]
BaseRevision = Annotated[Base, Depends(get_base_revision)]

DryRun = Annotated[
    bool, Query(description="Validate, check and plan the change, but commit and apply nothing")
]
Message = Annotated[
    str | None, Query(max_length=1000, description="Why: recorded with the revision")
]
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
