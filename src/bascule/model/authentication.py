"""Pre-authentication of an ``l7`` http service: HTTP basic auth in front of it (pure).

``authentication: {realm: Operations, users: [ops]}`` asks every client for a user and a
password before anything reaches a real server; a missing or wrong one is answered 401 with
``WWW-Authenticate: Basic realm="Operations"``. The users are kept by Bascule's HTTP user store
(``store/http_users.py``: names and password hashes, never in the document); the document only
names them, and the change pipeline refuses a name the store does not hold
(``daemon/http_users.py``). HAProxy checks the passwords (``engines/haproxy/authentication.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from bascule.errors import FieldError
from bascule.model.capabilities import Mode

if TYPE_CHECKING:
    from bascule.model.document import Configuration

# A user name: what a person types at the browser's prompt. RFC 7617 forbids ':' in it; the
# alphabet is also one HAProxy reads as a plain word of its configuration (no quoting).
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# The realm ends up inside a quoted-string of the WWW-Authenticate header (RFC 7235 2.2),
# which HAProxy writes as it is: no '"' or '\\' (they would end or escape it), printable ASCII.
_REALM = re.compile(r"^[\x20-\x7e]{1,64}$")


def _user_name(value: str) -> str:
    if not _USER.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an HTTP user name: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit"
        )
    return value


def _realm(value: str) -> str:
    if not _REALM.fullmatch(value) or '"' in value or "\\" in value:
        raise ValueError(
            "must be 1 to 64 printable ASCII characters, without '\"' or '\\' (the realm is "
            "quoted in the WWW-Authenticate header)"
        )
    if value != value.strip():
        raise ValueError("must not start or end with a space")
    return value


HttpUserName = Annotated[str, AfterValidator(_user_name)]
Realm = Annotated[str, AfterValidator(_realm)]


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            raise ValueError(f"[{index}]: {name} is already users[{seen[name]}]")
        seen[name] = index
    return names


class Authentication(BaseModel):
    """Who may use the service: the realm the browser shows and the users of the store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    realm: Realm = "Restricted"
    users: Annotated[list[HttpUserName], AfterValidator(_unique)] = Field(min_length=1)


def authentication_errors(config: Configuration) -> Iterator[FieldError]:
    """Basic auth is HTTP: an l7 service of type http only."""
    for index, vs in enumerate(config.virtual_services):
        if vs.authentication is not None and not (vs.mode is Mode.l7 and vs.type.reads_http):
            yield FieldError(
                path=f"virtual_services[{index}].authentication",
                message="HTTP basic authentication needs an l7 service of type http",
            )


def authentication_users(config: Configuration) -> Iterator[tuple[int, int, str, str]]:
    """(service index, user index, service name, user name) of every user the services name."""
    for index, vs in enumerate(config.virtual_services):
        if vs.authentication is not None:
            for user_index, user in enumerate(vs.authentication.users):
                yield index, user_index, vs.name, user
