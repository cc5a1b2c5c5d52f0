"""keepalived view -> configuration text, through one dumb Jinja2 template (as HAProxy's).

Where this sits in the flow of a change: the keepalived engine calls ``build_view`` (view.py,
where every decision lives) and then ``render``; the text is what its shell checks and
installs. No logic in the template, no escaping (keepalived has none: the view refuses any
value that is not a plain word), StrictUndefined so a misspelt field fails.
"""

from __future__ import annotations

from bascule.config_templates import config_environment
from bascule.engines.keepalived.view import KeepalivedView

TEMPLATE_NAME = "keepalived.conf.j2"

_ENVIRONMENT = config_environment("bascule.engines.keepalived")


def render(view: KeepalivedView) -> str:
    """The keepalived configuration file for ``view``."""
    return _ENVIRONMENT.get_template(TEMPLATE_NAME).render(view=view)
