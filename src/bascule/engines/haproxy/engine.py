"""The HAProxy engine as the daemon sees it: the Engine contract over view, render, runtime.

Sits between the daemon's executor and the HAProxy shell (shell.py): it turns a desired
``Configuration`` into config text (view.py, render.py), a plan's runtime actions into
runtime-API commands (runtime.py), and HAProxy's own reports (``show servers state``,
``show stat``) back into observations keyed by virtual service and real server.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from bascule.engines.base import (
    EngineObservation,
    Health,
    PersistenceEntry,
    ServerObservation,
    ServiceObservation,
)
from bascule.engines.haproxy import runtime
from bascule.engines.haproxy.persistence import table_names
from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.shell import HaproxyPaths, HaproxyShell
from bascule.engines.haproxy.view import (
    MAX_WEIGHT,
    PEERS,
    HaproxyGlobals,
    build_view,
    proxy_name,
    server_name,
)
from bascule.errors import EngineError, EngineRejected
from bascule.model import Configuration, Mode, RealServerState, VirtualService
from bascule.net.addresses import host_port
from bascule.reconcile.actions import Action, ReplaceConfig, SetState, SetWeight
from bascule.reconcile.planner import ServerRef

log = logging.getLogger("bascule.haproxy")

# Where HAProxy's local peer listens (on the load balancer's loopback): during a reload the old
# worker connects there to hand its stick tables (persistence) to the new one (configuration.txt
# 3.5 "Peers").
LOCAL_PEER = "127.0.0.1:7785"

# The longest a reload waits for the running worker's initial stick-table resync (two 5 s
# steps: from the previous worker, then from remote peers, of which there are none).
PEERS_RESYNC_WAIT = 11.0

ADMIN_STATE = {
    RealServerState.enabled: runtime.AdminState.READY,
    RealServerState.drain: runtime.AdminState.DRAIN,
    RealServerState.disabled: runtime.AdminState.MAINT,
}


class HaproxyEngine:
    """Engine contract implementation for HAProxy (see engines/base.py)."""

    name = "haproxy"
    mode = Mode.l7
    max_weight = MAX_WEIGHT

    def __init__(
        self,
        run_dir: Path,
        *,
        binary: str,
        maxconn: int,
        nbthread: int,
        cpus: tuple[int, ...] = (),
        local_peer: str | None = LOCAL_PEER,
    ) -> None:
        self.paths = HaproxyPaths.under(run_dir)
        self.shell = HaproxyShell(self.paths, binary=binary)
        self.server_state = self.paths.run_dir / "server-state"
        self.globals = HaproxyGlobals(
            stats_socket=str(self.paths.stats_socket),
            maxconn=maxconn,
            nbthread=nbthread,
            server_state_file=str(self.server_state),
            cpus=cpus,
            local_peer=local_peer,
        )

    def render(self, config: Configuration) -> str:
        return render(build_view(config, self.globals))

    async def check(self, config: Configuration) -> None:
        await self.shell.check(self.render(config))
        busy = await asyncio.to_thread(unbindable_listeners, config)
        if busy:
            raise EngineRejected(
                "haproxy",
                "; ".join(f"cannot bind {where}: {why}" for where, why in busy)
                + " (another program holds it; HAProxy could not listen there)",
            )

    async def adopt(self) -> bool:
        adopted = await self.shell.adopt()
        if adopted:
            log.info("adopted the running HAProxy", extra={"pids": await self.worker_pids()})
        return adopted

    async def worker_pids(self) -> list[int]:
        return await self.shell.worker_pids()

    async def info(self) -> dict[str, Any]:
        running = await self.shell.is_running()
        return {
            "version": await self.shell.version(),
            "running": running,
            "worker_pids": await self.shell.worker_pids() if running else [],
            "config": str(self.paths.config),
        }

    async def execute(self, actions: Sequence[Action], applied: Configuration | None) -> None:
        commands: list[str] = []
        for action in actions:
            if isinstance(action, ReplaceConfig):
                await self._flush(commands)
                await self._wait_tables_handed_over(applied)
                await self._save_server_state()
                await self.shell.apply(self.render(action.config))
                applied = action.config
            elif isinstance(action, SetWeight):
                backend, server = _names(applied, action.vs, action.server)
                commands.append(runtime.set_weight(backend, server, action.weight))
            elif isinstance(action, SetState):
                backend, server = _names(applied, action.vs, action.server)
                commands.append(runtime.set_state(backend, server, ADMIN_STATE[action.state]))
        await self._flush(commands)

    async def _wait_tables_handed_over(self, applied: Configuration | None) -> None:
        """Before a reload, wait (bounded) until the running worker can hand its stick tables on.

        A worker first tries to learn the tables of the worker before it, for up to 5 s per
        step (configuration.txt 3.5; "resync_timeout" in ``show peers``), and only a worker
        that finished that can teach the next one: a reload sooner would start the new worker
        with empty tables (every persisted client balanced afresh). Checked with HAProxy 2.6.12.
        """
        if self.globals.local_peer is None or applied is None:
            return
        if not any(table_names(vs) for vs in applied.virtual_services):
            return
        deadline = asyncio.get_running_loop().time() + PEERS_RESYNC_WAIT
        while True:
            try:
                shown = await self.shell.runtime(runtime.SHOW_PEERS)
            except EngineError:
                return
            if runtime.peers_resynced(shown, PEERS) is not False:
                return
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.2)

    async def _save_server_state(self) -> None:
        """Save health and runtime state so the reloaded worker starts from it.

        configuration.txt, ``load-server-state-from-file``: without it a reload forgets
        which servers are down (a dead server would take traffic until ``fall`` checks fail
        again) and every runtime change. Weights and states the new document changes are set
        by the reconciler's next pass.
        """
        if not await self.shell.is_running():
            return
        try:
            state = await self.shell.runtime("show servers state")
        except EngineError:
            return
        tmp = self.server_state.with_suffix(".tmp")
        tmp.write_text(state if state.endswith("\n") else state + "\n")
        tmp.chmod(0o600)
        tmp.replace(self.server_state)

    async def _flush(self, commands: list[str]) -> None:
        if commands:
            await self.shell.runtime_many(list(commands))
            commands.clear()

    async def observe(
        self, applied: Configuration | None, *, counters: bool = True
    ) -> EngineObservation:
        if not await self.shell.is_running():
            return EngineObservation(running=False, detail="HAProxy is not running")
        if applied is None:
            return EngineObservation(running=True)
        index: dict[tuple[str, str], ServerRef] = {}
        for vs in applied.virtual_services:
            for rs in vs.real_servers:
                index[(proxy_name(vs), server_name(rs))] = (vs.name, rs.key)
        states = {(s.backend, s.server): s for s in await self.shell.show_servers_state()}
        servers: dict[ServerRef, ServerObservation] = {}
        if not counters:
            # Planning needs runtime weights and states only; "show stat" (health, counters)
            # is the costly read on a large configuration.
            for key, server_state in states.items():
                ref = index.get(key)
                if ref is not None:
                    servers[ref] = ServerObservation(
                        weight=server_state.uweight,
                        state=_admin_state(server_state),
                        health=Health.unchecked,
                    )
            return EngineObservation(running=True, servers=servers)
        services: dict[str, ServiceObservation] = {}
        for stat in await self.shell.show_stat():
            if stat.kind is runtime.StatKind.FRONTEND:
                services[stat.proxy] = ServiceObservation(**_counters(stat))
                continue
            if stat.kind is not runtime.StatKind.SERVER:
                continue
            ref = index.get((stat.proxy, stat.server))
            state = states.get((stat.proxy, stat.server))
            if ref is None or state is None:
                continue
            servers[ref] = ServerObservation(
                weight=state.uweight,
                state=_admin_state(state),
                health=_health(stat.status),
                check_result=stat.check_status or None,
                check_code=stat.check_code,
                check_duration_ms=stat.check_duration,
                check_detail=stat.last_chk or None,
                **_counters(stat),
            )
        return EngineObservation(running=True, servers=servers, services=services)

    async def stop(self, *, grace: float) -> None:
        await self.shell.stop(grace=grace)

    async def persistence(
        self, applied: Configuration | None, vs_name: str
    ) -> list[PersistenceEntry]:
        vs = _running_service(applied, vs_name)
        servers = {server_name(rs): rs.key for rs in vs.real_servers}
        # HAProxy numbers servers in the order of the section (5.2 "id"), which the view decides.
        declared = build_view(_alone(vs), self.globals).proxies[0].servers
        by_id = {number: servers.get(view.name) for number, view in enumerate(declared, 1)}
        entries: list[PersistenceEntry] = []
        for table in table_names(vs):
            text = await self.shell.runtime(runtime.show_table(table))
            for entry in runtime.parse_show_table(text):
                key = servers.get(entry.server_key or "")
                if key is None and entry.server_id is not None:
                    key = by_id.get(entry.server_id)
                entries.append(
                    PersistenceEntry(
                        table="primary" if table == proxy_name(vs) else "fallback",
                        key=entry.key,
                        real_server=key,
                        expires_in_s=entry.expires_ms / 1000,
                    )
                )
        return entries

    async def clear_persistence(self, applied: Configuration | None, vs_name: str) -> int:
        vs = _running_service(applied, vs_name)
        count = 0
        for table in table_names(vs):
            shown = await self.shell.runtime(runtime.show_table(table))
            count += len(runtime.parse_show_table(shown))
            await self.shell.runtime(runtime.clear_table(table))
        return count


def _running_service(applied: Configuration | None, vs_name: str) -> VirtualService:
    vs = applied.virtual_service(vs_name) if applied else None
    if vs is None:
        raise EngineError(f"HAProxy runs no virtual service {vs_name}")
    return vs


def _alone(vs: VirtualService) -> Configuration:
    return Configuration(virtual_services=[vs])


def unbindable_listeners(config: Configuration) -> list[tuple[str, str]]:
    """Listeners of ``config`` that HAProxy could not bind: (address:port, reason).

    ``haproxy -c`` does not bind, and a reload that meets EADDRINUSE makes HAProxy 2.6 pause
    every listener of the running worker while it retries (haproxy.c, protocol_bind_all), so
    new connections to *every* service are refused for about two seconds before it gives
    up. Trying each bind first, the way HAProxy does it (SO_REUSEADDR and SO_REUSEPORT, which
    HAProxy's own listeners also carry, so the ports it already holds bind fine), refuses such
    a change before anything is touched. An address not on the machine yet is skipped: the
    daemon adds the VIP before reloading.
    """
    busy: list[tuple[str, str]] = []
    for vs in config.virtual_services:
        if not vs.enabled or vs.mode is not Mode.l7:
            continue
        for address in vs.addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            for ports in vs.port_ranges:
                for port in range(ports.first, ports.last + 1):
                    if _in_use(family, address, port):
                        busy.append((host_port(address, port), "address already in use"))
    return busy


def _in_use(family: socket.AddressFamily, address: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as "v6only"
        try:
            probe.bind((address, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _names(applied: Configuration | None, vs_name: str, key: str) -> tuple[str, str]:
    vs = applied.virtual_service(vs_name) if applied else None
    rs = vs.real_server(key) if vs else None
    if vs is None or rs is None:
        raise EngineError(f"HAProxy runs no real server {key} in {vs_name}")
    return proxy_name(vs), server_name(rs)


class _Counters(TypedDict):
    current_connections: int
    total_connections: int
    bytes_in: int
    bytes_out: int
    rate: int
    total_requests: int


def _counters(stat: runtime.ServerStat) -> _Counters:
    """A ``show stat`` row's counters, for a front end and a server alike."""
    return _Counters(
        current_connections=stat.scur,
        total_connections=stat.stot,
        bytes_in=stat.bin,
        bytes_out=stat.bout,
        rate=stat.rate,
        total_requests=stat.requests,
    )


def _admin_state(state: runtime.ServerRuntimeState) -> RealServerState:
    if state.maint:
        return RealServerState.disabled
    if state.drain or state.uweight == 0:
        return RealServerState.drain
    return RealServerState.enabled


def _health(status: str) -> Health:
    """HAProxy's status column -> up | down | unchecked | maint."""
    word = status.split(" ", 1)[0].upper()
    if word in {"UP", "NOLB", "DRAIN", "OPEN"}:
        # "UP 1/3" is up and counting failures; DRAIN is up but drained.
        return Health.up
    if word == "DOWN":
        return Health.down
    if word == "MAINT":
        return Health.maint
    return Health.unchecked  # "no check"
