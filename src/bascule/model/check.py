"""Health checks of real servers: what to send, what to expect, how often (pure model)."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bascule.model.capabilities import CheckType
from bascule.model.types import HeaderName, HeaderValue, Hex, Hostname, HttpPath, Regex, SafeText
from bascule.model.types import bounded as _bounded
from bascule.model.types import seconds as _seconds


class HttpMethod(enum.StrEnum):
    HEAD = "HEAD"
    GET = "GET"
    POST = "POST"
    OPTIONS = "OPTIONS"


@dataclass(frozen=True, kw_only=True)
class StatusRange:
    """An inclusive range of HTTP status codes; a single code has ``first == last``."""

    first: int
    last: int

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def parse_status_list(text: str) -> tuple[StatusRange, ...]:
    """Parse ``"200-299,301,302"`` into ranges; raise ValueError naming the bad part."""
    ranges: list[StatusRange] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            raise ValueError("must be a comma-separated list of status codes or ranges")
        first_text, _, last_text = part.partition("-")
        if not first_text.isdigit() or (last_text and not last_text.isdigit()):
            raise ValueError(f"{part!r} is not a status code (100-599) or a range like 200-299")
        first, last = int(first_text), int(last_text or first_text)
        if not (100 <= first <= 599 and 100 <= last <= 599) or first > last:
            raise ValueError(f"{part!r} is not a status code (100-599) or a range like 200-299")
        ranges.append(StatusRange(first=first, last=last))
    return tuple(ranges)


def sni_for(host: str) -> str | None:
    """The TLS server name an https check sends for its Host header ``host``: the name
    without port or trailing dot, never an address (RFC 6066 section 3), else None."""
    if host.startswith("["):  # an IPv6 address, with or without a port
        return None
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name or None
    return None


class HealthCheck(BaseModel):
    """How a virtual service checks each of its real servers."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    type: CheckType = CheckType.tcp
    # seconds, fractions to the ms: HAProxy's "inter 500ms", the L4 checker's timers
    interval: _seconds(0.1, 3600) = 2  # type: ignore[valid-type]
    timeout: _seconds(0.1, 3600) = 1  # type: ignore[valid-type]
    rise: _bounded(1, 100) = 2  # type: ignore[valid-type]
    fall: _bounded(1, 100) = 3  # type: ignore[valid-type]
    port: _bounded(1, 65535) | None = None  # type: ignore[valid-type]
    method: HttpMethod = HttpMethod.GET
    path: HttpPath = "/"
    host: Hostname | None = None
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    post_data: SafeText | None = None
    expect_status: str = "200-299,301,302,401"
    expect_body: Regex | None = None
    send_hex: Hex | None = None
    expect_hex: Hex | None = None

    @field_validator("expect_status", mode="before")
    @classmethod
    def _status_number_as_text(cls, value: object) -> object:
        # YAML reads `expect_status: 200` as a number; it means the list "200".
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("expect_status")
    @classmethod
    def _valid_status_list(cls, value: str) -> str:
        parse_status_list(value)
        return value

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.lower() in {"host", "content-length", "transfer-encoding", "connection"}:
                raise ValueError(
                    f"header {name!r} is set by Bascule itself (use 'host' for the Host header)"
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.timeout > self.interval:
            raise ValueError("timeout: must not be longer than interval")
        if self.type is CheckType.binary and not self.send_hex and not self.expect_hex:
            raise ValueError("send_hex: a binary check needs send_hex, expect_hex or both")
        if self.post_data is not None and self.method is not HttpMethod.POST:
            raise ValueError("post_data: only a POST check sends post_data")
        return self

    @property
    def status_ranges(self) -> tuple[StatusRange, ...]:
        return parse_status_list(self.expect_status)
