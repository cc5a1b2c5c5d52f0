"""The stick tables of a running service read and cleared: persistence entries, client loads.

Where it sits: under the daemon's persistence and limits views (``ConfigService``); the
tables' names come from persistence.py and limits.py, the runtime API's ``show table`` and
``clear table`` from runtime.py, sent through the shell.
"""

from __future__ import annotations

from bascule.engines.base import ClientLoad, PersistenceEntry
from bascule.engines.haproxy import limits, runtime
from bascule.engines.haproxy.installation import Installation
from bascule.engines.haproxy.persistence import table_names
from bascule.engines.haproxy.servers import server_name
from bascule.engines.haproxy.view import build_view, proxy_name
from bascule.errors import EngineError
from bascule.model import Configuration, VirtualService


class StickTables(Installation):
    """A running service's stick tables (see the module's doc)."""

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

    async def client_loads(
        self, applied: Configuration | None, vs_name: str, *, top: int, rule: str | None = None
    ) -> list[ClientLoad]:
        vs = _running_service(applied, vs_name)
        held = vs.limits
        table = limits.table_name(vs)
        if rule is not None:
            found = next((r for r in vs.rules if r.name == rule), None)
            held = found.limits if found is not None else None
            table = limits.rule_table_name(vs, rule)
        if held is None or not held.per_client_limited:
            return []
        text = await self.shell.runtime(runtime.show_table(table))
        return limits.client_loads(held, runtime.parse_show_table(text), top=top)

    async def clear_persistence(self, applied: Configuration | None, vs_name: str) -> int:
        vs = _running_service(applied, vs_name)
        count = 0
        for table in table_names(vs):
            shown = await self.shell.runtime(runtime.show_table(table))
            count += len(runtime.parse_show_table(shown))
            await self.shell.runtime(runtime.clear_table(table))
        return count


def _running_service(applied: Configuration | None, vs_name: str) -> VirtualService:
    vs = applied.pool(vs_name) if applied else None
    if vs is None:
        raise EngineError(f"HAProxy runs no virtual service {vs_name}")
    return vs


def _alone(vs: VirtualService) -> Configuration:
    # a sub-service's pool stands alone as a service of its own: same servers, same order
    return Configuration(virtual_services=[vs.model_copy(update={"sub_services": []})])
