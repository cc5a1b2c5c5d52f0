"""``show servers state`` as values: each server's runtime weight and admin and operational
state (management.txt 9.3).

Where it sits: the engine's observation (observation.py) plans from it (the runtime weights and
states the reconciler compares with the document), the drain timer reads whether a server is
still drained, and the engine saves the same answer as the server state file a reload starts
from. Pure.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from bascule.engines.haproxy.runtime import answer_lines, parse_int
from bascule.errors import EngineError


class OperationalState(enum.Enum):
    """``srv_op_state``: what health checks and the admin state make of a server."""

    STOPPED = 0  # down
    STARTING = 1  # up, warming up (slowstart)
    RUNNING = 2  # up
    STOPPING = 3  # up but soft-stopping (e.g. disable-on-404)


class AdminFlags(enum.Flag):
    """``srv_admin_state``, a mask: why a server is in maintenance or drained."""

    FMAINT = 0x01  # forced into maintenance (set server ... state maint)
    IMAINT = 0x02  # inherited maintenance from a tracked server
    CMAINT = 0x04  # maintenance from the configuration ("disabled")
    FDRAIN = 0x08  # forced into drain (set server ... state drain)
    IDRAIN = 0x10  # inherited drain from a tracked server
    RMAINT = 0x20  # maintenance after an address resolution failure
    HMAINT = 0x40  # FQDN set from the stats socket


_MAINT = AdminFlags.FMAINT | AdminFlags.IMAINT | AdminFlags.CMAINT | AdminFlags.RMAINT
_DRAIN = AdminFlags.FDRAIN | AdminFlags.IDRAIN


@dataclass(frozen=True, kw_only=True)
class ServerRuntimeState:
    """One server of ``show servers state`` (format version 1)."""

    backend_id: int
    backend: str
    server_id: int
    server: str
    address: str
    port: int | None
    operational_state: OperationalState
    admin: AdminFlags
    uweight: int
    iweight: int
    seconds_since_change: int

    @property
    def maint(self) -> bool:
        """In maintenance, whether forced, inherited, configured or after a DNS failure."""
        return bool(self.admin & _MAINT)

    @property
    def drain(self) -> bool:
        """Drained (forced or inherited) and not in maintenance."""
        return bool(self.admin & _DRAIN) and not self.maint

    @property
    def up(self) -> bool:
        return self.operational_state is not OperationalState.STOPPED


SERVERS_STATE_VERSION = 1


def parse_servers_state(text: str) -> list[ServerRuntimeState]:
    """Parse ``show servers state``: a version line, a '#' header line, then one row per server."""
    return list(iter_servers_state(text))


def iter_servers_state(text: str) -> Iterator[ServerRuntimeState]:
    """``parse_servers_state``'s rows one at a time (EngineError as soon as the answer is
    not ``show servers state``'s, at the first row asked for)."""
    lines = answer_lines(text)
    version = next(lines, None)
    if version is None:
        raise EngineError("empty 'show servers state' answer")
    if version.strip() != str(SERVERS_STATE_VERSION):
        raise EngineError(f"unsupported 'show servers state' format version {version!r}")
    header_line = next(lines, "")
    if not header_line.startswith("# "):
        raise EngineError("'show servers state' answer has no header line")
    header = header_line[2:].split()
    try:
        columns = [header.index(name) for name in _SERVERS_STATE_COLUMNS]
    except ValueError as exc:
        raise EngineError(f"'show servers state' has no column {exc}") from None
    port_column = header.index("srv_port") if "srv_port" in header else None
    # 10,000 rows at every plan (issue 15): the columns by position, the enums by value
    operational = {str(state.value): state for state in OperationalState}
    admin: dict[str, AdminFlags] = {}
    for line in lines:
        if line.startswith("#"):
            continue  # "each line starting by a sharp ('#') is considered as a comment"
        fields = line.split()
        try:
            be_id, be_name, srv_id, srv_name, addr, op, adm, uweight, iweight, since = (
                fields[column] for column in columns
            )
            flags = admin.get(adm)
            if flags is None:
                flags = admin[adm] = AdminFlags(int(adm))
            state = ServerRuntimeState(
                backend_id=int(be_id),
                backend=be_name,
                server_id=int(srv_id),
                server=srv_name,
                address=addr,
                port=(
                    parse_int(fields[port_column])
                    if port_column is not None and port_column < len(fields)
                    else None
                )
                or None,
                operational_state=operational.get(op) or OperationalState(int(op)),
                admin=flags,
                uweight=int(uweight),
                iweight=int(iweight),
                seconds_since_change=int(since),
            )
        except (IndexError, ValueError) as exc:
            raise EngineError(f"unexpected 'show servers state' row {line!r}") from exc
        yield state


# The columns of a ``show servers state`` row that ``parse_servers_state`` reads, in order.
_SERVERS_STATE_COLUMNS = (
    "be_id",
    "be_name",
    "srv_id",
    "srv_name",
    "srv_addr",
    "srv_op_state",
    "srv_admin_state",
    "srv_uweight",
    "srv_iweight",
    "srv_time_since_last_change",
)
