"""The WUI's pages: one module per page, each with an APIRouter named ``router``.

The pattern every page follows (app.py includes each module's ``router``)::

    router = APIRouter()

    @router.get("/statistics")
    async def statistics_page(request: Request, session: Reader, services: Services) -> Response:
        return render(request, "statistics/index.html", {"page": "statistics", ...})

- templates of page ``x`` live in ``web/templates/x/`` and extend ``base.html``; form fields
  use ``macros.html`` (ids ``field-<name>``, errors ``error-<name>``);
- the session dependency (``auth.Reader``/``Operator``/``Configurer``/``Administrator``) both
  authenticates and checks CSRF on POST; hide what ``can.<permission>`` says the actor may not
  do, and the dependency still refuses it with 403;
- a configuration change ends in ``changes.propose`` (planned, then shown on ``/preview``);
  other changes (users, tokens) call their service and ``state.flash`` the outcome, then
  redirect (303) to a GET page.
"""
