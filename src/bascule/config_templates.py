"""The Jinja environment every configuration and script renderer uses.

Outside the layers, like ``text``: HAProxy, stunnel, keepalived and conntrackd configurations
and the DSR scripts are rendered the same way, from the ``templates`` directory of their own
package: no HTML escaping (they are not HTML; each view quotes or refuses what it puts in), an
undefined name is an error rather than an empty string, and block tags leave no blank lines.
"""

from __future__ import annotations

import jinja2


def config_environment(package: str) -> jinja2.Environment:
    """The environment for the templates of ``package`` (``bascule.engines.haproxy``...)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=False,  # noqa: S701 - configurations and scripts; the views quote their values
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
