"""A service's ``authentication`` as HAProxy lines (configuration manual 3.4 "Userlists",
4.2 "http-request auth", 7.3.6 "http_auth"). Pure.

Where this sits in the flow of a change: ``view.py`` asks ``authentication_view`` for a
service's rule (printed in its ``listen`` section after the limits and ACME's answers, before
the content rules: nothing reaches a rule's answer, the cache or a real server without a
user) and its ``userlist <service>_users`` section. The hashes come from the HTTP user store
through the engine's globals (``HaproxyGlobals.http_users``), never from the document; a user
the store does not hold is left out of the list (nobody logs in as it; the change pipeline
refuses such a document anyway).

HAProxy answers a request without valid credentials with 401 and ``WWW-Authenticate: Basic
realm="<realm>"``; it never logs the ``Authorization`` header (``option httplog`` has no
header captures), and the cache neither keeps nor serves a request that carries one (6.1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bascule.engines.haproxy.quoting import quote, token
from bascule.model import VirtualService

USERLIST_SUFFIX = "_users"
# A crypt(3) hash HAProxy verifies: the store keeps yescrypt hashes only (store/http_users.py).
_HASH = re.compile(r"^\$y\$[./0-9A-Za-z$]+$")


@dataclass(frozen=True, kw_only=True)
class AuthenticationView:
    request_rules: tuple[str, ...] = ()
    # ("<service>_users", its "user" lines)
    userlist: tuple[str, tuple[str, ...]] | None = None


def userlist_name(vs: VirtualService) -> str:
    return token(f"{vs.name}{USERLIST_SUFFIX}")


def authentication_view(vs: VirtualService, hashes: Mapping[str, str]) -> AuthenticationView:
    authentication = vs.authentication
    if authentication is None:
        return AuthenticationView()
    name = userlist_name(vs)
    # names are checked by the model and again by token(); a hash is checked here again and
    # strongly quoted (2.2: no '$' expansion inside single quotes)
    users = tuple(
        f"user {token(user)} password {quote(_hash(hashes[user]))}"
        for user in authentication.users
        if user in hashes
    )
    return AuthenticationView(
        request_rules=(
            f"http-request auth realm {quote(authentication.realm)} unless {{ http_auth({name}) }}",
        ),
        userlist=(name, users),
    )


def _hash(hashed: str) -> str:
    if not _HASH.fullmatch(hashed):
        raise ValueError("an HTTP user's password hash is not a yescrypt hash")
    return hashed
