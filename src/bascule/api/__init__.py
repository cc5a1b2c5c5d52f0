"""The REST API: the door that the CLI, scripts and (later) the WUI use to reach the service layer.

In the flow of a change it sits at the very top: a request is parsed here, handed to the one
``ConfigService`` (validation, engine check, commit, reconcile all happen there), and its
outcome is returned as JSON. ``create_app`` builds the application; the daemon serves it on a
unix socket (mode 0600), and later over HTTPS with API tokens.
"""

from bascule.api.app import API_PREFIX, create_app
from bascule.api.deps import ApiServices

__all__ = ["API_PREFIX", "ApiServices", "create_app"]
