"""What the daemon hands the WUI: the service layer and its companions, and the dependency
that gives them to a page.

The WUI never reaches past these objects: every change goes through ``config``
(``ConfigService``), every login and user change through ``accounts``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from bascule.daemon.accounts import AccountService
from bascule.daemon.acme import AcmeService
from bascule.daemon.audit import AuditService
from bascule.daemon.certificates import CertificateService
from bascule.daemon.ha import HaService
from bascule.daemon.http_users import HttpUserService
from bascule.daemon.pages import PageService
from bascule.daemon.request_logs import RequestLogFile
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics

SystemProbe = Callable[[], Awaitable[dict[str, Any]]]
LogLines = Callable[[int], list[str]]  # the daemon's newest log lines (daemon/logs.py)


def no_logs(limit: int) -> list[str]:
    """The log source when none is given (tests): no lines."""
    return []


@dataclass(frozen=True, kw_only=True)
class WebServices:
    """The collaborators of every page; built once by the composition root."""

    config: ConfigService
    accounts: AccountService
    audit: AuditService
    statistics: Statistics
    system: SystemProbe  # engine versions and state, as the daemon knows them
    logs: LogLines = no_logs  # recent log lines for the System page (daemon.logs.recent_lines)
    certificates: CertificateService | None = None  # the certificate store's service
    acme: AcmeService | None = None  # ACME orders and renewal (daemon/acme.py)
    ha: HaService | None = None  # this node of the HA pair (daemon/ha.py)
    request_logs: RequestLogFile | None = None  # HAProxy's request logs (daemon/request_logs.py)
    pages: PageService | None = None  # the page store (daemon/pages.py)
    http_users: HttpUserService | None = None  # basic auth users (daemon/http_users.py)


def get_web_services(request: Request) -> WebServices:
    services: WebServices = request.app.state.web_services
    return services


Services = Annotated[WebServices, Depends(get_web_services)]
