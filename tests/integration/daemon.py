"""A Bascule daemon running for real inside a test topology's load-balancer namespace.

``BasculeDaemon(topology)`` starts ``bascule run`` in the ``lb`` namespace with its own data
dir, waits for its API socket, and offers the CLI (``cli(...)``, run in the same namespace),
HAProxy's stats socket (``haproxy(cmd)``) and stopping: SIGTERM (``terminate``: the daemon
only, the data plane runs on), ``bascule stop --data-plane`` (``stop``: everything) or SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from netns import Topology

BASCULE = str(Path(sys.executable).with_name("bascule"))


class BasculeDaemon:
    def __init__(
        self,
        topology: Topology,
        *,
        data_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        run_args: Sequence[str] = (),
        host: str = "lb",
        command: str = BASCULE,
    ) -> None:
        self.topology = topology
        self.host = host  # the namespace it runs in (an HA pair has two load balancers)
        # The ``bascule`` that runs the daemon (another virtual environment's, to upgrade)
        self.command = command
        # Extra BASCULE_* settings (e.g. BASCULE_ADMIN_PASSWORD) and `bascule run` options
        # (e.g. "--listen", "198.18.0.2:8443").
        self.env = dict(env or {})
        self.run_args = tuple(run_args)
        # Inside the topology's work dir, removed with the topology (short enough for the
        # 108-byte limit of unix socket paths).
        self.data_dir = data_dir or Path(
            tempfile.mkdtemp(prefix="d", dir=topology.workdir or "/tmp")
        )
        self.process: subprocess.Popen[str] | None = None
        self.log_path = self.data_dir.with_name(self.data_dir.name + ".log")

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0, *, wait: bool = True) -> BasculeDaemon:
        """Start ``bascule run``; unless ``wait`` is False, wait until its API socket
        accepts connections (a deadline, not a pause: a daemon starts in 1-3 s, and at load
        10-14 on two CPUs took more than the 15 s this waited before)."""
        env = {
            **os.environ,
            "BASCULE_RECONCILE_INTERVAL": "1",
            "BASCULE_SHUTDOWN_GRACE": "3",
            **self.env,
        }
        with self.log_path.open("a") as log:
            self.process = self.topology.popen(
                self.host,
                [self.command, "--data-dir", str(self.data_dir), "run", *self.run_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                text=True,
            )
        if not wait:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bascule run exited {self.process.returncode}:\n{self.log()}")
            if self.socket_answers():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"bascule run did not serve its API within {timeout}s:\n{self.log()}")

    def socket_answers(self) -> bool:
        """The API socket accepts a connection."""
        path = self.data_dir / "bascule.sock"
        if not path.exists():
            return False
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(path))
            except OSError:
                return False
        return True

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM; the daemon's exit code. A daemon still running after ``timeout`` is killed
        and the test fails with the end of its log (which says how far its stop got)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            self.stop_haproxy()
            raise AssertionError(
                f"bascule run did not stop within {timeout}s of SIGTERM:\n{self.log()}"
            ) from None

    def stop(self, *, data_plane: bool = True, timeout: float = 30.0) -> int:
        """``bascule stop [--data-plane]``; the daemon's exit code."""
        assert self.process is not None
        self.cli("stop", *(["--data-plane"] if data_plane else []), "--timeout", str(timeout))
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=5)

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-6000:]
        except FileNotFoundError:
            return ""

    def stop_haproxy(self) -> None:
        """Remove whatever HAProxy this daemon left running (test cleanup after kill -9)."""
        pid_file = self.data_dir / "haproxy" / "haproxy.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    # -- talking to it -------------------------------------------------------------------------

    def cli(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [BASCULE, "--data-dir", str(self.data_dir), *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"bascule {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\ndaemon log:\n{self.log()}"
            )
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli("--json", *args).stdout)

    def apply(
        self, document: dict[str, Any], *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        path = self.data_dir.with_name(self.data_dir.name + "-doc.yaml")
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return self.cli("apply", "-f", str(path), "--force", *extra, check=check)

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.cli_json("status")
        return result

    def server_status(self, vs: str, key: str) -> str:
        for service in self.status()["virtual_services"]:
            if service["name"] == vs:
                for rs in service["real_servers"]:
                    if rs["key"] == key:
                        return str(rs["status"])
        raise KeyError(f"{vs}/{key}")

    def wait_status(self, vs: str, key: str, wanted: str, timeout: float = 15.0) -> float:
        """Wait until a real server has ``wanted`` status; return the seconds it took."""
        start = time.monotonic()
        while True:
            seen = self.server_status(vs, key)
            if seen == wanted:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise AssertionError(f"{vs}/{key} is {seen}, not {wanted}, after {timeout}s")
            time.sleep(0.1)

    def metrics(self) -> str:
        """``/metrics`` as Prometheus scrapes it, through the API socket."""
        socket_path = str(self.data_dir / "bascule.sock")
        argv = ["curl", "-s", "--unix-socket", socket_path, "http://localhost/metrics"]
        return self.topology.run(self.host, argv).stdout

    def haproxy(self, command: str) -> str:
        path = self.data_dir / "haproxy" / "haproxy.sock"
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(path))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def worker_pids(self) -> list[int]:
        path = self.data_dir / "haproxy" / "master.sock"
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(path))
            s.sendall(b"show proc\n")
            # The master CLI keeps a non-interactive connection open until it reads EOF.
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        pids = []
        section = ""
        for line in b"".join(chunks).decode().splitlines():
            if line.startswith("#"):
                section = line
                continue
            fields = line.split()
            if (
                fields
                and fields[0].isdigit()
                and "old" not in section.lower()
                and len(fields) > 1
                and fields[1] == "worker"
            ):
                pids.append(int(fields[0]))
        return pids
