"""The configuration document as a whole: parsing, cross-object invariants, field errors.

``parse_document`` is the single entry point for every door. It validates each field
(pydantic), then the invariants that span objects (unique names, no port clashes between
services, unique real servers), then what each service's mode allows (``modes.py``), and
reports *every* problem as a ``FieldError`` whose path reads like
``virtual_services[0].real_servers[2].weight``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bascule.errors import FieldError, InvalidConfiguration
from bascule.model.capabilities import Mode, Protocol
from bascule.model.modes import mode_errors
from bascule.model.schema import SCHEMA_VERSION, migrate, newer_message
from bascule.model.virtual_service import VirtualService


class Configuration(BaseModel):
    """The whole desired state. Build it with ``parse_document`` so invariants are checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The shape of the document (model/schema.py); parse_document migrates older ones first.
    schema_version: int = SCHEMA_VERSION
    virtual_services: list[VirtualService] = Field(default_factory=list)

    @field_validator("schema_version")
    @classmethod
    def _current(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            raise ValueError(newer_message(value))
        if value != SCHEMA_VERSION:
            raise ValueError(f"must be {SCHEMA_VERSION} (parse_document migrates older ones)")
        return value

    def virtual_service(self, name: str) -> VirtualService | None:
        return next((vs for vs in self.virtual_services if vs.name == name), None)

    def to_document(self) -> dict[str, Any]:
        """The JSON-ready document (every default spelled out), as ``bascule export`` shows."""
        return self.model_dump(mode="json")


def for_mode(config: Configuration, mode: Mode) -> Configuration:
    """The services one kind of engine runs (HAProxy l7, nftables l4), as a configuration."""
    return Configuration.model_construct(
        schema_version=config.schema_version,
        virtual_services=[vs for vs in config.virtual_services if vs.mode is mode],
    )


def parse_document(data: Any) -> Configuration:
    """Validate a document (parsed YAML/JSON) and return it, or raise InvalidConfiguration."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidConfiguration(
            [FieldError(path="", message="the document must be a mapping with virtual_services")]
        )
    data = migrate(data)
    try:
        config = Configuration.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfiguration(list(_translate(exc))) from None
    problems = [*invariant_errors(config), *mode_errors(config)]
    if problems:
        raise InvalidConfiguration(problems)
    return config


def invariant_errors(config: Configuration) -> Iterator[FieldError]:
    """Problems that no single object can see: names, port clashes, duplicate servers."""
    seen_names: dict[str, int] = {}
    for index, vs in enumerate(config.virtual_services):
        where = f"virtual_services[{index}]"
        if vs.name in seen_names:
            yield FieldError(
                path=f"{where}.name",
                message=f"{vs.name!r} is already the name of virtual_services"
                f"[{seen_names[vs.name]}]",
            )
        seen_names.setdefault(vs.name, index)
        yield from _own_port_overlaps(vs, where)
        seen_servers: dict[str, int] = {}
        for rs_index, rs in enumerate(vs.real_servers):
            if rs.key in seen_servers:
                yield FieldError(
                    path=f"{where}.real_servers[{rs_index}]",
                    message=f"{rs.key} is already real_servers[{seen_servers[rs.key]}] "
                    "of this virtual service",
                )
            seen_servers.setdefault(rs.key, rs_index)
    yield from _clashes_between_services(config)


def _own_port_overlaps(vs: VirtualService, where: str) -> Iterator[FieldError]:
    ranges = vs.port_ranges
    for i, later in enumerate(ranges[1:], start=1):
        for earlier in ranges[:i]:
            if later.overlaps(earlier):
                what = "port" if earlier is ranges[0] else f"extra port {earlier}"
                yield FieldError(
                    path=f"{where}.extra_ports[{i - 1}]",
                    message=f"{later} overlaps this service's {what}",
                )
                break


def _clashes_between_services(config: Configuration) -> Iterator[FieldError]:
    services = config.virtual_services
    # Only services of one protocol on the same address can clash; a wildcard VIP (0.0.0.0 or
    # ::) listens on every address of its family. Grouping first keeps this linear in the
    # number of services rather than comparing every pair (200 services: 20,000 pairs).
    by_address: dict[tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address], list[int]] = {}
    wildcards: dict[tuple[str, int], list[int]] = {}
    by_family: dict[tuple[str, int], list[int]] = {}
    ranges = [vs.port_ranges for vs in services]  # a computed property: once per service
    for index, vs in enumerate(services):
        # each VIP of a dual-stack service is checked on its own (one per family)
        for vip in vs.addresses:
            address = ipaddress.ip_address(vip)
            proto = Protocol(vs.protocol).value
            family = (proto, address.version)
            if address.is_unspecified:
                candidates = by_family.get(family, [])
            else:
                candidates = sorted(
                    [*by_address.get((proto, address), []), *wildcards.get(family, [])]
                )
            for other_index in candidates:
                other = services[other_index]
                for position, mine in enumerate(ranges[index]):
                    clash = next((r for r in ranges[other_index] if mine.overlaps(r)), None)
                    if clash is not None:
                        yield FieldError(
                            path=f"virtual_services[{index}].port"
                            if position == 0
                            else f"virtual_services[{index}].extra_ports[{position - 1}]",
                            message=f"{vip} {proto} port {mine} is already used by "
                            f"virtual service {other.name!r} (port {clash})",
                        )
            by_family.setdefault(family, []).append(index)
            if address.is_unspecified:
                wildcards.setdefault(family, []).append(index)
            else:
                by_address.setdefault((proto, address), []).append(index)


# Messages for pydantic's own error types, in words a person understands.
_MESSAGES: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "is not a known field (check the spelling in the configuration reference)",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}
_PREFIXED = re.compile(r"^([a-z_]+(?:\[\d+\])?): (.*)$", re.DOTALL)
_INDEX = re.compile(r"^(\[\d+\]): (.*)$", re.DOTALL)


def _translate(exc: ValidationError) -> Iterator[FieldError]:
    for error in exc.errors(include_url=False):
        path = _path(error["loc"])
        kind = error["type"]
        if kind == "enum":
            expected = error.get("ctx", {}).get("expected", "")
            message = f"must be one of {expected}"
        elif kind in {"value_error", "assertion_error"}:
            message = str(error["msg"]).removeprefix("Value error, ")
            # Validators that look at several fields prefix the field they blame.
            for pattern, joiner in ((_PREFIXED, "."), (_INDEX, "")):
                match = pattern.match(message)
                if match:
                    path = f"{path}{joiner}{match[1]}" if path else match[1]
                    message = match[2]
                    break
        else:
            message = _MESSAGES.get(kind, str(error["msg"]))
        yield FieldError(path=path, message=message)


def _path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item.startswith(("function-", "json-or-python", "lax-or-strict")) or item in {
            "int",
            "str",
        }:
            # pydantic's names for the branches of union and wrapped validators
            continue
        elif item.endswith("]") and "[" in item:
            continue
        else:
            parts.append(f".{item}" if parts else item)
    return "".join(parts)
