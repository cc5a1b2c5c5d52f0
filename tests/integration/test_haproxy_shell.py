"""engine.py against the real HAProxy 2.6, on loopback, with a hand-written config.

Two tiny HTTP servers run in threads of this process; HAProxy balances them from a frontend
on 127.0.0.1. Nothing needs root (loopback, ports above 20000, a run dir under /tmp, short
enough for unix socket paths); every HAProxy process a test starts is stopped, even when the
test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bascule.engines.haproxy import runtime, server_stats
from bascule.engines.haproxy.shell import HaproxyPaths, HaproxyShell
from bascule.errors import ApplyFailed, EngineError, EngineRejected

pytestmark = pytest.mark.integration

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
if not Path(HAPROXY).exists():
    pytest.skip("needs the haproxy binary (Debian package haproxy)", allow_module_level=True)

# An address in the benchmarking range that no interface here holds: `haproxy -c` accepts a
# bind on it, the reload fails to bind it.
UNBINDABLE = "198.18.0.77"

# What the renderer must emit for zero-drop reloads (see test_reloads_drop_nothing).
ZERO_DROP_DEFAULTS = "    option idle-close-on-response\n"
ZERO_DROP_GLOBAL = "    hard-stop-after 30s\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards HAProxy

    def do_GET(self) -> None:
        body = self.server.server_name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # HAProxy closing idle server connections at a reload is expected


@pytest.fixture
def backends() -> Iterator[list[int]]:
    servers = []
    for name in ("rs1", "rs2"):
        server = QuietServer(("127.0.0.1", 0), Handler)
        server.server_name = name
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
    yield [s.server_address[1] for s in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def frontend_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    assert port > 20000
    return port


@pytest.fixture
async def engine() -> AsyncIterator[HaproxyShell]:
    run_dir = Path(tempfile.mkdtemp(prefix="bsc-ha-", dir="/tmp"))
    engine = HaproxyShell(HaproxyPaths.under(run_dir), binary=HAPROXY)
    try:
        yield engine
    finally:
        with contextlib.suppress(Exception):
            await engine.stop(grace=1.0)
        _kill_leftovers(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def _kill_leftovers(run_dir: Path) -> None:
    """Kill, by pid, any process whose command line names this test's own run dir."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(run_dir).encode() in cmdline:
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


def _gone(pid: int) -> bool:
    """Exited: no /proc entry, or a zombie nobody reaped (this container's init does not)."""
    try:
        return "zombie" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def config(
    engine: HaproxyShell,
    frontend_port: int,
    backends: list[int],
    *,
    weight: int = 1,
    extra_bind: str = "",
    marker: str = "",
    zero_drop: bool = True,
) -> str:
    """The hand-written minimal config: one HTTP frontend, two servers."""
    servers = "".join(
        f"    server rs{i} 127.0.0.1:{port} weight {weight}\n"
        for i, port in enumerate(backends, start=1)
    )
    return (
        "global\n"
        f"    stats socket {engine.paths.stats_socket} mode 600 level admin expose-fd listeners\n"
        "    stats timeout 30s\n"
        f"{ZERO_DROP_GLOBAL if zero_drop else ''}"
        "defaults\n"
        "    mode http\n"
        "    timeout connect 2s\n"
        "    timeout client 10s\n"
        "    timeout server 10s\n"
        f"{ZERO_DROP_DEFAULTS if zero_drop else ''}"
        "frontend web\n"
        f"    bind 127.0.0.1:{frontend_port}\n"
        f"{extra_bind}"
        f"    # {marker}\n"
        "    default_backend app\n"
        "backend app\n"
        "    balance roundrobin\n"
        f"{servers}"
    )


def get(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        connection.close()


@dataclass
class Client:
    """Requests in a loop on a thread, new connection each time or one kept alive."""

    port: int
    keep_alive: bool
    think: float = 0.0  # idle time between requests: a kept-alive connection sits idle
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    failed_at: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self.stop.is_set():
            if not self.keep_alive:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", "/")
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"HTTP {response.status}")
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
                self.failed_at.append(time.monotonic())
                connection.close()
            if not self.keep_alive:
                connection.close()
            if self.think:
                time.sleep(self.think)
        connection.close()


@contextlib.contextmanager
def traffic(port: int) -> Iterator[list[Client]]:
    clients = [
        Client(port=port, keep_alive=False),
        Client(port=port, keep_alive=True),
        Client(port=port, keep_alive=True, think=0.005),
    ]
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    try:
        yield clients
    finally:
        for client in clients:
            client.stop.set()
        for thread in threads:
            thread.join(timeout=10)


async def answered(clients: list[Client], more: int = 5) -> None:
    """Until every client has had ``more`` successful answers from now on (traffic flows);
    10 s at the most."""
    wanted = [client.ok + more for client in clients]
    async with asyncio.timeout(10):
        # the clients run on threads: their counters are polled
        while any(client.ok < n for client, n in zip(clients, wanted, strict=True)):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_version(engine: HaproxyShell) -> None:
    assert (await engine.version()).startswith("2.")


async def test_check_rejects_a_broken_config_and_leaves_haproxy_alone(
    engine: HaproxyShell, frontend_port: int, backends: list[int]
) -> None:
    good = config(engine, frontend_port, backends)
    await engine.start(good)
    pids = await engine.worker_pids()
    broken = good.replace("balance roundrobin", "balance roundrobin\n    bnd *:1")

    with pytest.raises(EngineRejected) as caught:
        await engine.check(broken)
    assert "unknown keyword 'bnd'" in caught.value.checker_message
    assert caught.value.rejected_path == str(engine.paths.rejected)
    assert engine.paths.rejected.read_text() == broken
    assert "unknown keyword 'bnd'" in engine.paths.rejected_output.read_text()
    # the message points into the kept file, not into a deleted temporary one
    assert "haproxy.cfg.rejected:" in caught.value.checker_message

    with pytest.raises(EngineRejected):
        await engine.apply(broken)
    assert engine.paths.config.read_text() == good
    assert await engine.worker_pids() == pids
    assert get(frontend_port) in {"rs1", "rs2"}
    assert (
        not engine.paths.new_config.exists() or engine.paths.new_config.stat().st_mode & 0o077 == 0
    )
    assert engine.paths.config.stat().st_mode & 0o777 == 0o600


async def test_apply_reloads_with_a_new_worker(
    engine: HaproxyShell, frontend_port: int, backends: list[int]
) -> None:
    first = config(engine, frontend_port, backends)
    await engine.apply(first)  # not running yet: apply starts it
    assert await engine.is_running()
    [before] = await engine.worker_pids()

    await engine.apply(config(engine, frontend_port, backends, weight=2))
    [after] = await engine.worker_pids()
    assert after != before
    assert engine.paths.last_good.read_text() == first
    assert {s.uweight for s in await engine.show_servers_state()} == {2}
    assert {get(frontend_port) for _ in range(4)} == {"rs1", "rs2"}


async def test_runtime_changes_keep_the_worker(
    engine: HaproxyShell, frontend_port: int, backends: list[int]
) -> None:
    await engine.start(config(engine, frontend_port, backends))
    pids = await engine.worker_pids()

    await engine.runtime(runtime.set_weight("app", "rs1", 0))
    await engine.runtime_many(
        [
            runtime.set_weight("app", "rs2", 7),
            runtime.set_state("app", "rs2", runtime.AdminState.DRAIN),
            runtime.set_maxconn("app", "rs2", 50),
        ]
    )
    states = {s.server: s for s in await engine.show_servers_state()}
    assert states["rs1"].uweight == 0
    assert states["rs2"].uweight == 7 and states["rs2"].drain
    stats = {(s.proxy, s.server): s for s in await engine.show_stat()}
    assert stats[("app", "rs2")].status.startswith("DRAIN")
    assert stats[("web", "FRONTEND")].kind is server_stats.StatKind.FRONTEND
    assert await engine.worker_pids() == pids

    with pytest.raises(EngineError, match="No such server"):
        await engine.runtime(runtime.set_weight("app", "nope", 1))
    with pytest.raises(EngineError, match="No such server"):
        await engine.runtime_many(
            [runtime.set_weight("app", "rs1", 1), runtime.set_weight("app", "nope", 1)]
        )
    with pytest.raises(EngineError, match="Unknown command"):
        await engine.runtime("frobnicate")


async def test_reloads_drop_nothing(
    engine: HaproxyShell, frontend_port: int, backends: list[int]
) -> None:
    await engine.start(config(engine, frontend_port, backends))
    seen: set[int] = set(await engine.worker_pids())
    with traffic(frontend_port) as clients:
        await answered(clients)
        for n in range(20):
            await engine.apply(config(engine, frontend_port, backends, marker=f"reload {n}"))
            seen.update(await engine.worker_pids())
        await answered(clients)  # by the last worker
    assert len(seen) == 21
    for client in clients:
        assert client.ok > 20, client
        assert client.failures == [], f"keep_alive={client.keep_alive}: {client.failures[:5]}"


async def test_a_failed_reload_rolls_back_and_traffic_goes_on(
    engine: HaproxyShell, frontend_port: int, backends: list[int]
) -> None:
    good = config(engine, frontend_port, backends)
    await engine.start(good)
    unbindable = config(
        engine, frontend_port, backends, extra_bind=f"    bind {UNBINDABLE}:{frontend_port}\n"
    )
    await engine.check(unbindable)  # the checker does not bind: it passes

    with traffic(frontend_port) as clients:
        await answered(clients)
        with pytest.raises(ApplyFailed, match="cannot bind socket"):
            await engine.apply(unbindable)
        await answered(clients)  # traffic goes on after the failed reload

    assert engine.paths.config.read_text() == good
    assert engine.paths.rejected.read_text() == unbindable
    assert await engine.is_running()
    assert get(frontend_port) in {"rs1", "rs2"}
    new_connections, *keep_alive = clients
    for client in keep_alive:
        assert client.ok > 0 and client.failures == [], client.failures[:5]
    # HAProxy 2.6 treats every bind error as "port busy": the new process pauses the old
    # worker's listeners (SIGTTOU) and retries the bind 100 times 10 ms apart before giving
    # up and resuming them (SIGTTIN). New connections are refused for that second; the
    # renderer's side of the fix is never to emit an address the host cannot bind (the
    # daemon adds the VIP first, or net.ipv4.ip_nonlocal_bind=1). See the report.
    assert new_connections.ok > 0
    assert {f.split("(")[0] for f in new_connections.failures} <= {"ConnectionRefusedError"}
    if new_connections.failed_at:
        window = new_connections.failed_at[-1] - new_connections.failed_at[0]
        assert window < 3.0, f"connections refused for {window:.2f} s"


async def test_start_reports_why_haproxy_would_not_start(
    engine: HaproxyShell, frontend_port: int, backends: list[int]
) -> None:
    unbindable = config(
        engine, frontend_port, backends, extra_bind=f"    bind {UNBINDABLE}:{frontend_port}\n"
    )
    with pytest.raises(ApplyFailed, match="cannot bind socket"):
        await engine.start(unbindable)
    assert not await engine.is_running()
    assert engine.paths.rejected.read_text() == unbindable
    assert "cannot bind socket" in engine.paths.rejected_output.read_text()


async def test_stop(engine: HaproxyShell, frontend_port: int, backends: list[int]) -> None:
    await engine.start(config(engine, frontend_port, backends))
    [worker] = await engine.worker_pids()
    await engine.stop(grace=5.0)
    assert not await engine.is_running()
    assert not engine.paths.pid_file.exists()
    assert not engine.paths.master_socket.exists()
    assert _gone(worker)
    with pytest.raises(OSError):
        get(frontend_port)


async def test_a_new_engine_adopts_the_running_master(
    engine: HaproxyShell, frontend_port: int, backends: list[int]
) -> None:
    await engine.start(config(engine, frontend_port, backends))
    pids = await engine.worker_pids()

    successor = HaproxyShell(HaproxyPaths.under(engine.paths.run_dir), binary=HAPROXY)
    assert await successor.adopt()
    assert await successor.worker_pids() == pids
    await successor.runtime(runtime.set_weight("app", "rs1", 3))
    assert {s.server: s.uweight for s in await successor.show_servers_state()}["rs1"] == 3


async def test_adopt_clears_leftovers_of_a_dead_master(engine: HaproxyShell) -> None:
    engine.paths.run_dir.mkdir(parents=True, exist_ok=True)
    engine.paths.pid_file.write_text("999999999\n")
    engine.paths.master_socket.touch()
    assert not await engine.adopt()
    assert not engine.paths.pid_file.exists()
    assert not engine.paths.master_socket.exists()
