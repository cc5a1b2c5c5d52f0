"""Bascule as a system service: the units, readiness and the watchdog, a boot.

The unit is the one ``./setup.sh --service`` installs (deploy/systemd/bascule.service with
this checkout's paths): ``systemd-analyze verify`` must accept it. Where systemd is the
service manager of the machine, the daemon is started through it for real
(``test_the_unit_under_systemd``); elsewhere (a container, this CI) that test skips with the
reason, and the daemon is run as systemd would run it: a real datagram socket stands for the
service manager's ``NOTIFY_SOCKET``, and the test reads what the daemon tells it.

A boot is a daemon starting on a data dir whose revision nothing runs: no HAProxy, no
nftables table, no VIP (``vips.json`` still lists them). ``READY=1`` must come only once the
VIPs, the rules and HAProxy are back and the API answers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from daemon import BASCULE, BasculeDaemon
from netns import Topology, netns_pids, require_root
from waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UNIT_TEMPLATE = ROOT / "deploy" / "systemd" / "bascule.service"


def install_unit(directory: Path) -> Path:
    """``./setup.sh --service`` with the unit written to ``directory`` (not /etc: the
    machine is shared) and nothing started; the unit it wrote."""
    done = subprocess.run(
        ["./setup.sh", "--service", "--dev", "--no-link"],
        cwd=ROOT,
        env={**os.environ, "BASCULE_UNIT_DIR": str(directory)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return directory / "bascule.service"


def unit_settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_setup_installs_a_unit_that_systemd_accepts(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("./setup.sh runs as root")
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = install_unit(tmp_path)
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == "", verified.stderr  # not even a warning
    settings = unit_settings(unit)
    assert settings["ExecStart"] == [f"{ROOT}/.venv/bin/bascule --data-dir /var/lib/bascule run"]
    for key, value in {
        "Type": "notify",
        "NotifyAccess": "main",
        "Restart": "on-failure",
        "WatchdogSec": "30s",
        "KillMode": "process",  # the data plane outlives a restart of the unit
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "StateDirectory": "bascule",
    }.items():
        assert settings[key] == [value], key
    capabilities = set(settings["CapabilityBoundingSet"][0].split())
    assert capabilities == {
        "CAP_NET_ADMIN",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_RAW",
        "CAP_SYS_RESOURCE",
    }
    assert "@" not in unit.read_text().replace("@local", "")  # every placeholder replaced


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """The service manager's end of NOTIFY_SOCKET: a datagram socket the test reads."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        yield sock


def next_message(sock: socket.socket, timeout: float = 30.0) -> dict[str, str]:
    sock.settimeout(timeout)
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def service_document(topo: Topology) -> dict[str, Any]:
    servers = [{"address": rs.address, "port": 80} for rs in topo.real_servers]
    check = {"type": "tcp", "interval": 1, "rise": 1, "fall": 2}
    return {
        "virtual_services": [
            {
                "name": "web",
                "address": topo.vip(100),
                "port": 80,
                "check": check,
                "real_servers": servers,
            },
            {
                "name": "fast",
                "address": topo.vip(101),
                "port": 80,
                "mode": "l4",
                "type": "generic",
                "check": check,
                "real_servers": servers,
                "subnet_originating": True,
            },
        ]
    }


def lb_state(topo: Topology) -> tuple[str, str, list[str]]:
    """The lb's addresses, nftables tables and process names."""
    addresses = topo.run("lb", ["ip", "-o", "address", "show", "dev", "eth0"]).stdout
    tables = topo.run("lb", ["nft", "list", "tables"]).stdout
    names = []
    for pid in netns_pids(topo.lb.netns):
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return addresses, tables, names


def test_a_boot_brings_the_revision_back_before_ready(
    make_topology: Callable[..., Topology], notify_socket: socket.socket
) -> None:
    topo = make_topology(real_servers=2)
    topo.start_real_servers()
    first = BasculeDaemon(topo).start()
    try:
        first.apply(service_document(topo))
        for vs in ("web", "fast"):
            for rs in topo.real_servers:
                first.wait_status(vs, f"{rs.address}:80", "up")
        assert first.terminate() == 0  # SIGTERM: the daemon only, the data plane runs on
        addresses, tables, names = lb_state(topo)
        assert topo.vip(100) in addresses and topo.vip(101) in addresses
        assert "table ip bascule" in tables and "haproxy" in names
    finally:
        first.stop_haproxy()

    # the boot: nothing of the data plane survives a reboot, but the data dir does
    topo.run("lb", ["nft", "delete", "table", "ip", "bascule"])
    for n in (100, 101):
        topo.run("lb", ["ip", "address", "del", f"{topo.vip(n)}/32", "dev", "eth0"])
    addresses, tables, names = lb_state(topo)
    assert topo.vip(100) not in addresses and "bascule" not in tables and "haproxy" not in names

    booted = BasculeDaemon(
        topo,
        data_dir=first.data_dir,
        env={"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "2000000"},
    )
    booted.start(wait=False)
    try:
        ready = next_message(notify_socket)
        # READY=1 is the first word: by then the revision runs and the API answers
        assert ready["READY"] == "1", ready
        assert ready["STATUS"] == "serving: the engines run the current revision"
        assert booted.process is not None and ready["MAINPID"] == str(booted.process.pid)
        addresses, tables, names = lb_state(topo)
        assert topo.vip(100) in addresses and topo.vip(101) in addresses
        assert "table ip bascule" in tables and "haproxy" in names
        assert booted.socket_answers()
        # the L4 service's servers join once Bascule's own checker has seen them rise (one
        # interval after the start; later on a loaded machine)
        for rs in topo.real_servers:
            booted.wait_status("fast", f"{rs.address}:80", "up")
        for vip in (topo.vip(100), topo.vip(101)):
            result = topo.run_client("--url", f"http://{vip}/", "--requests", "10")
            assert result["failures"] == 0, (vip, result["errors"])
        # the watchdog: a ping every second (half of WATCHDOG_USEC); those sent while the
        # clients ran wait in the socket: read them first
        notify_socket.setblocking(False)
        queued = []
        while True:
            try:
                queued.append(notify_socket.recv(4096))
            except BlockingIOError:
                break
        assert queued and set(queued) == {b"WATCHDOG=1"}, queued
        assert next_message(notify_socket, 5) == {"WATCHDOG": "1"}
        start = time.monotonic()
        assert next_message(notify_socket, 5) == {"WATCHDOG": "1"}
        assert 0.5 < time.monotonic() - start < 4
        booted.process.terminate()
        wait_until(
            "STOPPING=1",
            lambda: next_message(notify_socket, 10).get("STOPPING") == "1",
            timeout=20,
        )
        assert booted.process.wait(timeout=20) == 0
    finally:
        if booted.process is not None and booted.process.poll() is None:
            booted.kill()
        booted.stop_haproxy()


def test_the_unit_under_systemd(tmp_path: Path) -> None:
    """Start, restart and kill the daemon through systemd itself, where it is PID 1.

    The unit is installed as a runtime unit (/run/systemd/system, gone at the next boot) under
    a name of its own, with a data dir of its own and a demo service on loopback (no VIP to
    add), and removed at the end.
    """
    require_root()
    if not Path("/run/systemd/system").is_dir():
        pytest.skip("systemd is not the service manager of this machine (a container?)")
    name = f"bascule-test-{os.getpid()}"
    data_dir = tmp_path / "data"
    unit_path = Path("/run/systemd/system") / f"{name}.service"
    text = install_unit(tmp_path / "unit").read_text()
    text = text.replace("--data-dir /var/lib/bascule run", f"--data-dir {data_dir} run")
    text = text.replace("StateDirectory=bascule", f"ReadWritePaths={tmp_path}")
    text += "\nEnvironment=BASCULE_LISTEN=none\n"
    data_dir.mkdir(mode=0o700)
    unit_path.write_text(text)

    def systemctl(*args: str) -> str:
        done = subprocess.run(
            ["systemctl", *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def main_pid() -> int:
        return int(systemctl("show", "-P", "MainPID", name).strip())

    def cli(*args: str) -> None:
        done = subprocess.run(
            [BASCULE, "--data-dir", str(data_dir), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)

    try:
        systemctl("daemon-reload")
        systemctl("start", name)  # returns once READY=1 arrived
        assert systemctl("is-active", name).strip() == "active"
        cli("apply", "-f", str(_demo_file(tmp_path)), "--force")
        master = _haproxy_master(data_dir)
        first = main_pid()
        systemctl("restart", name)  # KillMode=process: HAProxy lives on, adopted
        assert main_pid() != first
        assert _haproxy_master(data_dir) == master
        systemctl("kill", "--signal=SIGKILL", name)  # Restart=on-failure brings it back
        wait_until("restarted by systemd", lambda: main_pid() not in (0, first), timeout=30)
        wait_until(
            "active again",
            lambda: systemctl("is-active", name).strip() == "active",
            timeout=60,
        )
        assert _haproxy_master(data_dir) == master
    finally:
        subprocess.run(
            [BASCULE, "--data-dir", str(data_dir), "stop", "--data-plane"],
            capture_output=True,
            check=False,
            timeout=60,
        )
        subprocess.run(["systemctl", "stop", name], capture_output=True, check=False)
        unit_path.unlink(missing_ok=True)
        subprocess.run(["systemctl", "daemon-reload"], capture_output=True, check=False)


def _demo_file(tmp_path: Path) -> Path:
    from bascule.demo import demo_document

    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(demo_document(port=18080)))
    return path


def _haproxy_master(data_dir: Path) -> int:
    return int((data_dir / "haproxy" / "haproxy.pid").read_text().split()[0])
