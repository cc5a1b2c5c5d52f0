"""The ``logging`` section of the document: where request logs go besides the disk (pure).

Request logs are on by default for every l7 service (``VirtualService.request_log``); the
daemon keeps them on disk with a size cap. ``logging.syslog`` sends them to a remote syslog
server too, by UDP or TCP, straight from HAProxy (the packet path never waits on Python).
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict

from bascule.model.types import IPAddress, Port


class SyslogProtocol(enum.StrEnum):
    udp = "udp"
    tcp = "tcp"


class Syslog(BaseModel):
    """A remote syslog server (RFC 5424 over UDP, or octet-counted over TCP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: IPAddress
    port: Port = 514
    protocol: SyslogProtocol = SyslogProtocol.udp


class Logging(BaseModel):
    """Where request logs go besides the load balancer's own disk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    syslog: Syslog | None = None
