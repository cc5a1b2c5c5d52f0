"""The API's unix socket is 0600 from the moment it exists to the moment it is gone: whoever
connects to it is trusted as a local administrator (daemon/doors.py ``bind_unix_socket``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from bascule.daemon.doors import UnixSocketServer, bind_unix_socket
from bascule.errors import BasculeError


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_socket_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "bascule.sock"
    path.write_text("a stale socket file")
    old = os.umask(0)
    try:
        sock = bind_unix_socket(path)
    finally:
        os.umask(old)
    try:
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert mode(path) == 0o600
        assert os.umask(old) == old  # the umask is given back
    finally:
        sock.close()


def test_a_socket_that_cannot_be_made_is_a_readable_error(tmp_path: Path) -> None:
    with pytest.raises(BasculeError, match="cannot create the API socket"):
        bind_unix_socket(tmp_path / "missing-dir" / "bascule.sock")


async def test_served_as_the_daemon_does_it_is_never_open_to_others(tmp_path: Path) -> None:
    # uvicorn given uds= alone chmods its socket to 0666 once listening; the daemon binds it
    # itself and hands it over, so no one else can connect even for an instant.
    import uvicorn

    path = tmp_path / "bascule.sock"
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                seen.add(mode(path))

    watcher = threading.Thread(target=watch)
    watcher.start()
    server = UnixSocketServer(uvicorn.Config(hello, uds=str(path), log_config=None, lifespan="off"))
    try:
        task = asyncio.create_task(server.serve(sockets=[bind_unix_socket(path)]))
        async with asyncio.timeout(10):
            while not server.started and not task.done():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        transport = httpx.AsyncHTTPTransport(uds=str(path))
        async with httpx.AsyncClient(transport=transport, base_url="http://bascule") as client:
            assert (await client.get("/")).text == "hello"
        assert mode(path) == 0o600
    finally:
        server.should_exit = True
        await task
        stop.set()
        watcher.join()
    assert seen == {0o600}
