"""A change waiting for the person's Apply: planned first, shown on ``/preview``, then applied.

Every form that changes the configuration ends in ``propose``: the change is run once as a dry
run (validated, checked by the engines, planned: the diff and the actions), kept server-side
under the session (state.py), and the browser is sent to ``/preview``. Apply runs the same
change again for real with the same ``ChangeRequest`` (the same actor, the same base
revision), so a change made by someone else in between is refused (``Conflict``) instead of
being silently overwritten.

``new_request`` is the WUI's one source of a ``ChangeRequest``: the session's actor, based
on the revision the page was showing. Pages build a PendingChange with ``config_edit`` (an edit
from ``bascule.model.edits``) or directly with their own ``run`` (a rollback, a restore).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse

from bascule.daemon.accounts import WebSession
from bascule.daemon.changes import ChangeRequest
from bascule.daemon.results import ApplyResult
from bascule.errors import EngineError, InvalidConfiguration
from bascule.model.access import Permission
from bascule.web.forms import FormErrors, errors_for
from bascule.web.services import WebServices
from bascule.web.state import flash, session_states

Run = Callable[[ChangeRequest], Awaitable[ApplyResult]]  # the dry run, then the real one
Edit = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class PendingChange:
    """One change as the preview shows it and Apply runs it."""

    title: str  # "Add virtual service web", shown as the preview's heading
    request: ChangeRequest  # who asked, on which revision, why
    run: Run  # run(request.with_dry_run()) plans, run(request) commits and applies
    permission: Permission  # checked again at Apply: the role may have changed meanwhile
    return_to: str  # where Cancel goes (the form or the page the change came from)
    done_to: str = ""  # where the result page links after a successful apply
    plan: ApplyResult | None = None  # the dry run shown on /preview
    result: ApplyResult | None = None  # the outcome, once applied

    async def apply(self) -> ApplyResult:
        """Run the change for real, as it was planned."""
        return await self.run(self.request)


def new_request(services: WebServices, session: WebSession, message: str = "") -> ChangeRequest:
    """A change by the session's actor, based on the current revision (the one the person
    is looking at)."""
    base, _ = services.config.document()
    return ChangeRequest(actor=session.actor, base=base, message=message)


def config_edit(
    services: WebServices,
    session: WebSession,
    *,
    title: str,
    edit: Edit,
    message: str,
    permission: Permission,
    return_to: str,
    done_to: str = "",
) -> PendingChange:
    """A change of the current document by ``edit``, based on the current revision."""
    config = services.config

    async def run(request: ChangeRequest) -> ApplyResult:
        return await config.edit(edit, request)

    return PendingChange(
        title=title,
        request=new_request(services, session, message),
        run=run,
        permission=permission,
        return_to=return_to,
        done_to=done_to,
    )


async def propose(request: Request, session: WebSession, change: PendingChange) -> RedirectResponse:
    """Plan ``change`` and send the browser to its preview.

    Raises what the service layer raises (InvalidConfiguration with the field paths,
    EngineRejected, NotFound, Conflict): the calling form shows it beside its fields.
    A change that changes nothing is not previewed: the person goes back with a note.
    """
    plan = await change.run(change.request.with_dry_run())
    if not plan.changed:
        flash(request, "Nothing to change: the configuration already says that.", "info")
        return RedirectResponse(change.return_to, status_code=303)
    session_states(request).set_pending(session.id, dataclasses.replace(change, plan=plan))
    return RedirectResponse("/preview", status_code=303)


async def propose_form(
    request: Request,
    session: WebSession,
    change: PendingChange,
    *,
    prefix: str,
    names: Iterable[str],
) -> RedirectResponse | FormErrors:
    """``propose``, or the errors the form shows again when the change is refused: field
    errors beside their fields (``prefix`` and ``names`` as in ``forms.errors_for``), an
    engine's refusal as an error of the whole form."""
    try:
        return await propose(request, session, change)
    except InvalidConfiguration as exc:
        return errors_for(exc, prefix=prefix, names=names)
    except EngineError as exc:
        return FormErrors(fields={}, general=(str(exc),))


async def propose_or_say(
    request: Request, session: WebSession, change: PendingChange, *, prefix: str
) -> RedirectResponse:
    """``propose`` a change that has no form of its own (a delete, a move): when it is
    refused, the person goes back to ``change.return_to`` with the reasons, nothing saved."""
    errors = await propose_form(request, session, change, prefix=prefix, names=())
    if not isinstance(errors, FormErrors):
        return errors
    reasons = [*errors.general, *(f"{name}: {text}" for name, text in errors.fields.items())]
    flash(request, "The change was not made: " + "; ".join(reasons), "error")
    return RedirectResponse(change.return_to, status_code=303)
