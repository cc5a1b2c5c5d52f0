"""conntrackd view -> configuration text, through one dumb Jinja2 template (as keepalived's).

The template prints what view.py decided; conntrackd has no quoting, and the view refuses any
value that is not a plain word. StrictUndefined, so a misspelt field fails.
"""

from __future__ import annotations

from bascule.config_templates import config_environment
from bascule.engines.conntrackd.view import ConntrackdView

TEMPLATE_NAME = "conntrackd.conf.j2"

_ENVIRONMENT = config_environment("bascule.engines.conntrackd")


def render(view: ConntrackdView) -> str:
    """The conntrackd configuration file for ``view``."""
    return _ENVIRONMENT.get_template(TEMPLATE_NAME).render(view=view)
