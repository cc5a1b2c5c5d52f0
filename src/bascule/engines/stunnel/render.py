"""stunnel view -> configuration text, through one dumb Jinja2 template (as HAProxy's).

Where this sits in the flow of a change: the stunnel engine calls ``build_view`` (view.py,
where every decision lives) and then ``render``; the text is what its shell checks and
installs. No logic in the template, no escaping (stunnel's file is ``key = value`` lines, and
the view refuses any value that could break one), StrictUndefined so a misspelt field fails.
"""

from __future__ import annotations

from bascule.config_templates import config_environment
from bascule.engines.stunnel.view import StunnelView

TEMPLATE_NAME = "stunnel.conf.j2"

_ENVIRONMENT = config_environment("bascule.engines.stunnel")


def render(view: StunnelView) -> str:
    """The stunnel configuration file for ``view``."""
    return _ENVIRONMENT.get_template(TEMPLATE_NAME).render(view=view)
