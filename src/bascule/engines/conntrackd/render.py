"""conntrackd view -> configuration text, through one dumb Jinja2 template (as keepalived's).

The template prints what view.py decided; conntrackd has no quoting, and the view refuses any
value that is not a plain word. StrictUndefined, so a misspelt field fails.
"""

from __future__ import annotations

import jinja2

from bascule.engines.conntrackd.view import ConntrackdView

TEMPLATE_NAME = "conntrackd.conf.j2"

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("bascule.engines.conntrackd", "templates"),
    autoescape=False,  # noqa: S701 - a conntrackd config, not HTML; values are checked in view.py
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render(view: ConntrackdView) -> str:
    """The conntrackd configuration file for ``view``."""
    return _ENVIRONMENT.get_template(TEMPLATE_NAME).render(view=view)
