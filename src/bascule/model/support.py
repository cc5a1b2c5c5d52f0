"""What this release of Bascule does not do yet, refused with a clear message.

The document accepts the whole vocabulary of DESIGN.md so later capabilities only remove rows
from these tables; a value that is valid but not implemented is refused as "not supported
yet", never silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bascule.errors import FieldError
from bascule.model.check import CheckType
from bascule.model.persistence import PersistenceMethod
from bascule.model.virtual_service import Mode, Scheduler, ServiceType

if TYPE_CHECKING:
    from bascule.model.document import Configuration

_LATER = "is not supported yet"

UNSUPPORTED_SCHEDULERS = {Scheduler.adaptive, Scheduler.weighted_response_time}
UNSUPPORTED_TYPES = {ServiceType.auto, ServiceType.remote_terminal}
UNSUPPORTED_CHECKS = {CheckType.icmp, CheckType.dns, CheckType.rdp}
SUPPORTED_PERSISTENCE = {PersistenceMethod.none}


def unsupported(config: Configuration) -> Iterator[FieldError]:
    """One FieldError per value this release cannot honour."""
    for index, vs in enumerate(config.virtual_services):
        where = f"virtual_services[{index}]"
        if vs.mode is Mode.l4:
            reason = " (udp services need it)" if vs.protocol.value == "udp" else ""
            yield FieldError(path=f"{where}.mode", message=f"l4 {_LATER}{reason}")
            continue
        if vs.forwarding.value != "nat":
            yield FieldError(
                path=f"{where}.forwarding",
                message="applies to mode l4 only; an l7 service is always a full proxy",
            )
        if vs.type in UNSUPPORTED_TYPES:
            yield FieldError(path=f"{where}.type", message=f"{vs.type.value} {_LATER}")
        if vs.transparent:
            yield FieldError(path=f"{where}.transparent", message=f"L7 transparency {_LATER}")
        if vs.scheduler in UNSUPPORTED_SCHEDULERS:
            yield FieldError(path=f"{where}.scheduler", message=f"{vs.scheduler.value} {_LATER}")
        if vs.scheduler is Scheduler.url_hash and vs.type is not ServiceType.http:
            yield FieldError(
                path=f"{where}.scheduler", message="url_hash needs type: http (it reads the URL)"
            )
        if vs.persistence.method not in SUPPORTED_PERSISTENCE:
            yield FieldError(
                path=f"{where}.persistence.method",
                message=f"{vs.persistence.method.value} {_LATER}",
            )
        if vs.check.type in UNSUPPORTED_CHECKS:
            yield FieldError(
                path=f"{where}.check.type",
                message=f"{vs.check.type.value} {_LATER} on l7 services",
            )
        for rs_index, rs in enumerate(vs.real_servers):
            if rs.forwarding is not None:
                yield FieldError(
                    path=f"{where}.real_servers[{rs_index}].forwarding",
                    message="applies to mode l4 only",
                )
