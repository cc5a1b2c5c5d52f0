"""The web interface (WUI): server-rendered pages over the one service layer.

Top of the flow of a change, beside the API: a person fills a form, the page plans the change
with ``ConfigService`` (``dry_run=True``), shows the diff on ``/preview`` and applies it only
when asked. ``create_wui`` builds the application the composition root (bascule.main) mounts
on the HTTPS listener at ``/``.
"""

from bascule.web.app import create_wui
from bascule.web.services import WebServices

__all__ = ["WebServices", "create_wui"]
