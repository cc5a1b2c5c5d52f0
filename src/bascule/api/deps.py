"""What a route handler may ask for: the services, the caller, the revision it edits.

Every request reaches the service layer through these dependencies, so cross-cutting concerns
live here and not in handlers: who the author of a change is (today the ``X-Bascule-Author``
header; with HTTPS and API tokens, the authenticated user), and which revision a write was
based on (``If-Match``, see ``etags``). Handlers use the ``Annotated`` aliases below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Body, Depends, Header, Query, Request

from bascule.api.etags import parse_if_match
from bascule.daemon.service import Base, ConfigService

SystemProbe = Callable[[], Awaitable[dict[str, Any]]]

DEFAULT_AUTHOR = "api"


@dataclass(frozen=True, kw_only=True)
class ApiServices:
    """What the daemon hands the API: the service layer and a probe of the running system."""

    config: ConfigService
    system: SystemProbe  # engine versions and state, as the daemon knows them


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


def get_config_service(request: Request) -> ConfigService:
    return get_services(request).config


def get_system_probe(request: Request) -> SystemProbe:
    return get_services(request).system


def get_author(
    x_bascule_author: Annotated[
        str | None,
        Header(
            max_length=128,
            description='Who makes the change, recorded in the history (the CLI sends "user@cli")',
        ),
    ] = None,
) -> str:
    # With authentication this becomes the authenticated user (and the header a detail of it).
    return (x_bascule_author or "").strip() or DEFAULT_AUTHOR


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
