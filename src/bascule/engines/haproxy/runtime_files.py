"""The files HAProxy reads that change without a reload: certificates, ACME answers, cache
generations.

Where it sits: under the daemon's certificate store, ACME and cache purge services: each
change is written to its file first (a reload keeps it), then swapped into the running worker
through the runtime API's transactions (transactions.py): ``set ssl cert``/``commit``, ``add
map``, ``set map``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from bascule.engines.haproxy import transactions as tx
from bascule.engines.haproxy.caching import generation_key
from bascule.engines.haproxy.installation import Installation
from bascule.engines.haproxy.tls import TlsPaths
from bascule.errors import EngineError
from bascule.model import Configuration, ServiceType

log = logging.getLogger("bascule.haproxy")


class RuntimeFiles(Installation):
    """Certificates, ACME answers and cache generations changed at runtime (see the
    module's doc)."""

    async def certificate_changed(self, applied: Configuration | None, name: str) -> bool:
        """The store rewrote ``name``'s file: swap it into the running worker without a reload
        (``set ssl cert`` or ``set ssl ca-file``, then ``commit``; ``abort`` on failure).
        Whether HAProxy serves it (False: not running, or no service of ``applied`` uses it).
        The file is read back, so HAProxy and a later reload see the same bytes."""
        if applied is None or not await self.shell.is_running():
            return False
        kind, path = _store_file(applied, name, self.globals.tls_paths)
        if kind is None:
            return False
        pem = await asyncio.to_thread(Path(path).read_bytes)
        tx.check_started(await self.shell.request(tx.set_ssl(kind, path, pem)))
        answer = await self.shell.request(tx.commit_ssl(kind, path))
        try:
            tx.check_committed(answer)
        except EngineError:
            with contextlib.suppress(EngineError):
                await self.shell.request(tx.abort_ssl(kind, path))
            raise
        log.info("certificate swapped at runtime", extra={"certificate": name, "file": path})
        return True

    async def set_challenge(self, path: str, answer: str) -> None:
        """Answer ACME's HTTP-01 request for ``path`` with ``answer`` on every port-80 HTTP
        listener: the map file first (a reload keeps it), then the running worker's map."""
        self._challenges[path] = answer
        await asyncio.to_thread(self._write_map)
        if await self.shell.is_running():
            map_path = str(self.acme_map)
            with contextlib.suppress(EngineError):  # a stale entry: replace it
                tx.check_map_answer(await self.shell.request(tx.del_map(map_path, path)))
            tx.check_map_answer(await self.shell.request(tx.add_map(map_path, path, answer)))

    async def clear_challenge(self, path: str) -> None:
        self._challenges.pop(path, None)
        await asyncio.to_thread(self._write_map)
        if await self.shell.is_running():
            tx.check_map_answer(await self.shell.request(tx.del_map(str(self.acme_map), path)))

    # -- the cache's purge (caching.py) --------------------------------------------------------

    async def purge_cache(self, applied: Configuration | None, name: str) -> bool:
        """Give service ``name``'s cache a new generation: no request finds an entry stored
        before now (they age out). The map file first (a reload keeps it), then the running
        worker's map with one ``set map``. Whether HAProxy runs it (False: not running, or
        ``applied`` has no cache for ``name``)."""
        vs = None if applied is None else applied.pool(name)
        if vs is None or vs.cache is None:
            return False
        generation = str(time.time_ns())
        key = generation_key(vs)  # a sub-service pool's is "site_api"
        self._generations[key] = generation
        await asyncio.to_thread(self._write_generations, applied)
        if not await self.shell.is_running():
            return False
        path = str(self.cache_generations)
        answer = await self.shell.request(tx.set_map(path, key, generation))
        if tx.map_entry_missing(answer):
            answer = await self.shell.request(tx.add_map(path, key, generation))
        tx.check_map_answer(answer)
        log.info("cache purged", extra={"virtual_service": name, "generation": generation})
        return True


def _store_file(
    applied: Configuration, name: str, paths: TlsPaths
) -> tuple[tx.SslObject | None, str]:
    """Which file of the store HAProxy loaded for ``name``, and as what (None: unused)."""
    for vs in applied.virtual_services:
        tls = vs.tls
        if tls is None or vs.type is ServiceType.starttls:
            continue
        if name in tls.certificates:
            return tx.SslObject.cert, paths.certificate(name)
        if name in (tls.client_ca, tls.server_ca):
            return tx.SslObject.ca_file, paths.ca_bundle(name)
    return None, ""
