"""The HTTP cache and compression of an ``l7`` http service (pure).

``cache`` keeps responses the real servers say may be kept (``Cache-Control``, ``Expires``,
validators) in the proxy's memory, for at most ``max_age`` seconds; ``compression`` gzips or
deflates the responses of the listed media types for clients that accept it. HAProxy does
both (``engines/haproxy/caching.py``); its limits are stated in docs/reference.md.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from bascule.errors import FieldError
from bascule.model.capabilities import Mode
from bascule.model.types import bounded as _bounded

if TYPE_CHECKING:
    from bascule.model.document import Configuration

#: HAProxy's cache holds at most 4095 MB ("total-max-size", configuration manual 6.2.1).
MAX_CACHE_MB = 4095
#: The memory all caches of a document may take together. HAProxy maps each cache's whole
#: size in shared memory when it starts (not as it fills), so the services' and
#: sub-services' caches are counted together against the most one cache may hold.
MAX_CACHES_MB = MAX_CACHE_MB
# RFC 9110 8.3.1: type "/" subtype, each a token; of the token characters, only those media
# type names use (RFC 6838 4.2 adds '!#$&^_', which no common type has): '#', '$' and quotes
# mean something to HAProxy's parser, and nothing here needs them.
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9.+-]{0,63}$")


def _media_type(value: str) -> str:
    if not _MEDIA_TYPE.fullmatch(value):
        raise ValueError(f"{value!r} is not a media type: type/subtype, like text/html")
    return value.lower()


MediaType = Annotated[str, AfterValidator(_media_type)]


class Cache(BaseModel):
    """The service's cache: its size, its largest object and its longest keep."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size_mb: _bounded(1, MAX_CACHE_MB) = 64  # type: ignore[valid-type]
    max_object_kb: _bounded(1, MAX_CACHE_MB * 512) = 1024  # type: ignore[valid-type]
    max_age: _bounded(1, 31_536_000) = 60  # type: ignore[valid-type]
    # an X-Cache: HIT|MISS response header
    x_cache_header: bool = False

    @model_validator(mode="after")
    def _object_fits(self) -> Self:
        if self.max_object_kb * 2 > self.size_mb * 1024:
            raise ValueError(
                f"max_object_kb: must be at most half of size_mb ({self.size_mb * 512} KB for "
                f"a {self.size_mb} MB cache)"
            )
        return self


class CompressionAlgorithm(enum.StrEnum):
    gzip = "gzip"
    deflate = "deflate"


def _text_types() -> list[str]:
    return ["text/html", "text/plain", "text/css", "application/javascript", "application/json"]


class Compression(BaseModel):
    """Which responses are compressed, and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: list[MediaType] = Field(default_factory=_text_types, min_length=1)
    algorithms: list[CompressionAlgorithm] = Field(
        default_factory=lambda: [CompressionAlgorithm.gzip, CompressionAlgorithm.deflate],
        min_length=1,
    )


def caching_errors(config: Configuration) -> Iterator[FieldError]:
    """Cache and compression read HTTP responses: an l7 service of type http only; and the
    caches together fit in ``MAX_CACHES_MB`` (reported on the first cache past it)."""
    total = 0
    for index, vs in enumerate(config.virtual_services):
        for field in ("cache", "compression"):
            if getattr(vs, field) is not None and not (vs.mode is Mode.l7 and vs.type.reads_http):
                yield FieldError(
                    path=f"virtual_services[{index}].{field}",
                    message="reads HTTP responses: it needs an l7 service of type http",
                )
        caches = [(f"virtual_services[{index}].cache", vs.cache)]
        caches += [
            (f"virtual_services[{index}].sub_services[{position}].cache", sub.cache)
            for position, sub in enumerate(vs.sub_services)
        ]
        for path, cache in caches:
            if cache is None:
                continue
            total += cache.size_mb
            if total > MAX_CACHES_MB:
                yield FieldError(
                    path=f"{path}.size_mb",
                    message=f"the caches would take {total} MB in all; HAProxy maps every "
                    f"cache's whole size when it starts, and at most {MAX_CACHES_MB} MB may "
                    "be given to caches",
                )
                total -= cache.size_mb
