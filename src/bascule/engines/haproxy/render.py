"""HAProxy view -> configuration text, through one dumb Jinja2 template.

Where this sits in the flow of a change: the HAProxy engine calls ``build_view`` (view.py,
where every decision lives) and then ``render`` here; the text it returns is what the engine
writes to ``haproxy.cfg.new``, checks with ``haproxy -c`` and applies. The template only loops
over pre-decided lines: no logic, no filters, no HTML autoescaping (a config file is not
HTML), and StrictUndefined so a misspelt field fails loudly instead of printing nothing.
The template is package data, loaded by jinja2 like code (``PackageLoader``): no path of the
machine, no file of the appliance is read here.
"""

from __future__ import annotations

from bascule.config_templates import config_environment
from bascule.engines.haproxy.view import HaproxyView

TEMPLATE_NAME = "haproxy.cfg.j2"

_ENVIRONMENT = config_environment("bascule.engines.haproxy")


def render(view: HaproxyView) -> str:
    """The HAProxy configuration file for ``view``."""
    return _ENVIRONMENT.get_template(TEMPLATE_NAME).render(view=view)
