"""Persistence ("stickiness"): how a client is kept on the real server it first reached."""

from __future__ import annotations

import enum
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from bascule.model.capabilities import PersistenceMethod
from bascule.model.types import CookieName, HeaderName
from bascule.model.types import bounded as _bounded
from bascule.model.types import seconds as _seconds


def _no_quote(value: str) -> str:
    # A single quote is an RFC 9110 token character, so a header name may hold one; but the
    # header is read by an engine's sample fetch (HAProxy's ``req.fhdr(<name>)``, 7.1), whose
    # argument cannot carry a quote, and no real header has one.
    if "'" in value:
        raise ValueError("must not contain a single quote (')")
    return value


#: The header ``selected_header`` persistence reads its key from.
StickyHeader = Annotated[HeaderName, AfterValidator(_no_quote)]


class PersistenceFallback(enum.StrEnum):
    none = "none"
    source_ip = "source_ip"


class Persistence(BaseModel):
    """LoadMaster's persistence options; ``timeout`` in seconds (1 minute to 28 days)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: PersistenceMethod = PersistenceMethod.none
    # whole seconds: HAProxy's cookie "maxidle" counts seconds, and a persistence timeout is
    # minutes to weeks anyway
    timeout: _seconds(  # type: ignore[valid-type]
        60, 2419200, whole="HAProxy's cookie maxidle counts whole seconds"
    ) = 3600
    cookie: CookieName = "BASCULEID"
    header: StickyHeader = "X-Session"
    query_item: CookieName = "session"
    fallback: PersistenceFallback = PersistenceFallback.none
    # source_ip: the prefix length that counts as one client, per address family (a dual-stack
    # service has both); an IPv6 client is one address by default, as an IPv4 one is
    source_mask: _bounded(1, 32) = 32  # type: ignore[valid-type]
    source_mask6: _bounded(1, 128) = 128  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.fallback is PersistenceFallback.source_ip and self.method in {
            PersistenceMethod.none,
            PersistenceMethod.source_ip,
        }:
            raise ValueError("fallback: source_ip is a fallback for the other methods")
        return self
