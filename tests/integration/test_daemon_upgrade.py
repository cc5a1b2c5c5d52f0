"""Restarting and upgrading the daemon under load: no request lost, no client moved.

The data plane outlives the daemon (SIGTERM stops the daemon only), so a restart is: stop,
start, adopt. An upgrade is the same with a new version installed in between, the way an
administrator does it: ``pip install`` a new Bascule into the daemon's virtual environment,
then restart it. Here that environment is a throwaway one (its own site-packages, the
dependencies read from this checkout's ``.venv``) holding a wheel built from this source,
first as ``OLD`` and then as ``NEW``.

Throughout, clients keep loading an L7 service (persistence by source address: an HAProxy
stick table) and an L4 NAT service (persistence sets in the kernel), on kept-alive and on new
connections, and must see no failure; each client address stays on the server it had, and
the entries of the stick table and of the persistence sets are counted before and after.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import answered, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = "0.1.0+old", "0.1.0+new"
CLIENTS = 6


def build_wheel(version: str, out: Path) -> Path:
    """A wheel of this source tree, as version ``version``."""
    tree = out / f"src-{version}"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    for path, old in (
        (tree / "pyproject.toml", 'version = "0.1.0"'),
        (tree / "src" / "bascule" / "__init__.py", '__version__ = "0.1.0"'),
    ):
        text = path.read_text()
        assert old in text, f"{path}: {old!r} not found"
        path.write_text(text.replace(old, old.replace("0.1.0", version)))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(tree),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = out.glob(f"bascule-{version}-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    return {version: build_wheel(version, out) for version in (OLD, NEW)}


@pytest.fixture
def venv(tmp_path: Path) -> Iterator[Path]:
    """A virtual environment for the daemon, its dependencies taken from ours."""
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(path)}))
    # A path line, not a site dir: ours holds bascule as an editable install, whose finder
    # (a .pth of its own) must not take the place of the version installed here.
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    yield path


def pip_install(venv: Path, wheel: Path) -> None:
    """``pip install`` a Bascule wheel into ``venv`` (over what it had)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


def document(topo: Topology) -> dict[str, Any]:
    servers = [{"address": rs.address, "port": 80} for rs in topo.real_servers]
    check = {"type": "tcp", "interval": 1, "rise": 1, "fall": 2}
    sticky = {"method": "source_ip", "timeout": 600}
    return {
        "virtual_services": [
            {
                "name": "web",
                "address": topo.vip(100),
                "port": 80,
                "scheduler": "round_robin",
                "check": check,
                "persistence": sticky,
                "real_servers": servers,
            },
            {
                "name": "fast",
                "address": topo.vip(101),
                "port": 80,
                "mode": "l4",
                "type": "generic",
                "subnet_originating": True,
                "scheduler": "round_robin",
                "check": check,
                "persistence": sticky,
                "real_servers": servers,
            },
        ]
    }


class Load:
    """Clients running until told to stop: kept-alive and new connections, on both VIPs."""

    def __init__(self, topo: Topology, workdir: Path) -> None:
        self.topo = topo
        self.stop_file = workdir / "load-stop"
        self.progress: dict[str, Path] = {}
        self.clients: dict[str, Any] = {}
        for vip in (topo.vip(100), topo.vip(101)):
            for kind, extra in {"keepalive": ["--keepalive"], "new": []}.items():
                name = f"{vip}-{kind}"
                self.progress[name] = workdir / f"progress-{name}"
                self.clients[name] = topo.start_client(
                    "--url",
                    f"http://{vip}/",
                    "--duration",
                    "300",
                    "--rate",
                    "100",
                    "--stop-file",
                    str(self.stop_file),
                    "--progress-file",
                    str(self.progress[name]),
                    *extra,
                )

    def wait_answered(self, more: int = 50) -> None:
        wanted = {name: answered(path) + more for name, path in self.progress.items()}
        wait_until(
            f"{more} more answers on every client",
            lambda: all(answered(self.progress[n]) >= count for n, count in wanted.items()),
            timeout=30,
        )

    def finish(self) -> dict[str, dict[str, Any]]:
        self.stop_file.touch()
        return {name: self.topo.finish_client(c, timeout=60) for name, c in self.clients.items()}


def placement(topo: Topology) -> dict[tuple[str, str], str]:
    """(VIP, client address) -> the one server that answered it."""
    placed = {}
    for vip in (topo.vip(100), topo.vip(101)):
        for source in topo.client.extra_addresses:
            result = topo.run_client(
                "--url", f"http://{vip}/", "--requests", "4", "--source", source
            )
            assert result["failures"] == 0, result["errors"]
            assert len(result["counts"]) == 1, (vip, source, result["counts"])
            placed[(vip, source)] = next(iter(result["counts"]))
    return placed


def stick_entries(daemon: BasculeDaemon) -> dict[str, str]:
    """The L7 stick table: client address -> real server."""
    answer = daemon.cli_json("persistence", "show", "web")
    return {e["key"]: e["real_server"] for e in answer["entries"]}


def kernel_entries(topo: Topology) -> set[str]:
    """The client addresses in the L4 persistence sets."""
    listing = json.loads(topo.run("lb", ["nft", "-j", "list", "sets", "ip"]).stdout)
    return {
        element["elem"]["val"]
        for item in listing["nftables"]
        if (body := item.get("set")) and body.get("table") == "bascule"
        for element in body.get("elem", [])
    }


def running_version(daemon: BasculeDaemon) -> str:
    """The version the daemon reports (``GET /api/v1/system``)."""
    import httpx

    transport = httpx.HTTPTransport(uds=str(daemon.data_dir / "bascule.sock"))
    with httpx.Client(transport=transport, base_url="http://bascule") as client:
        version: str = client.get("/api/v1/system").json()["version"]
    return version


def haproxy_processes(daemon: BasculeDaemon) -> tuple[int, list[int]]:
    master = int((daemon.data_dir / "haproxy" / "haproxy.pid").read_text().split()[0])
    return master, daemon.worker_pids()


def test_restart_and_upgrade_under_load_lose_nothing(
    make_topology: Callable[..., Topology], wheels: dict[str, Path], venv: Path
) -> None:
    topo = make_topology(real_servers=3, client_extra_addresses=CLIENTS)
    topo.start_real_servers()
    pip_install(venv, wheels[OLD])
    command = str(venv / "bin" / "bascule")
    daemon = BasculeDaemon(topo, command=command).start()
    load: Load | None = None
    try:
        assert running_version(daemon) == OLD
        daemon.apply(document(topo))
        for vs in ("web", "fast"):
            for rs in topo.real_servers:
                daemon.wait_status(vs, f"{rs.address}:80", "up")
        before = placement(topo)
        assert len(set(before.values())) > 1  # the clients spread over the servers
        processes = haproxy_processes(daemon)
        workdir = daemon.data_dir.parent
        load = Load(topo, workdir)
        load.wait_answered()
        # the placed clients and the load's own address
        sticky, kernel = stick_entries(daemon), kernel_entries(topo)
        assert len(sticky) == len(kernel) == CLIENTS + 1, (sticky, kernel)

        for step, wheel in (("restart", None), ("upgrade", wheels[NEW])):
            assert daemon.terminate() == 0, daemon.log()  # the daemon only
            load.wait_answered()  # served without a daemon
            if wheel is not None:
                pip_install(venv, wheel)
            daemon = BasculeDaemon(topo, data_dir=daemon.data_dir, command=command).start()
            assert "adopted the running HAProxy" in daemon.log(), step
            load.wait_answered()
            assert haproxy_processes(daemon) == processes, step  # adopted, not restarted
            after = stick_entries(daemon)
            print(
                f"{step}: stick table {len(sticky)} -> {len(after)} entries, "
                f"persistence sets {len(kernel)} -> {len(kernel_entries(topo))}"
            )
            assert {k: v for k, v in after.items() if k in sticky} == sticky, step
            assert kernel <= kernel_entries(topo), step
            assert placement(topo) == before, step  # every client on its server
        assert running_version(daemon) == NEW
        results = load.finish()
        load = None
        for name, result in results.items():
            assert result["failures"] == 0, (name, result["error_kinds"], result["errors"])
            assert result["stale_retries"] == 0, (name, result)
            assert result["ok"] > 200, (name, result["ok"])
    finally:
        if load is not None:
            load.finish()
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.stop(data_plane=True)
        daemon.stop_haproxy()
