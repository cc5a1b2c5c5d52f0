"""``bascule demo`` waits for a daemon that answers, and never loses the password it chose.

A daemon's socket file appears before the daemon accepts on it (it binds, then listens, then
serves). The fake daemon here is a unix socket server that does exactly that, late: bound at
once, listening only after the client was refused a few times, and dropping its first
connection unanswered. The client must keep trying, with a deadline.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bascule.cli.client import BasculeClient
from bascule.cli.errors import CliError
from bascule.main import app, wait_for_daemon

WHOAMI = b'{"name": "admin", "role": "admin", "permissions": []}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(WHOAMI)).encode() + b"\r\n\r\n" + WHOAMI
)


class LateDaemon:
    """Binds ``path`` now; listens once ``listen`` is set; drops its first connection."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.listen = threading.Event()
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self.listen.wait(0.01):
            if self._stop.is_set():
                return
        self.sock.listen()
        self.sock.settimeout(0.05)
        dropped = False
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                request = connection.recv(65536)
                if not request:  # the client's probe: connected, then closed
                    continue
                if not dropped:  # accepting, but not serving yet
                    dropped = True
                    continue
                self.requests.append(request)
                connection.sendall(ANSWER)

    def close(self) -> None:
        self._stop.set()
        self.listen.set()
        self._thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def late_daemon(tmp_path: Path) -> Iterator[LateDaemon]:
    daemon = LateDaemon(tmp_path / "bascule.sock")
    yield daemon
    daemon.close()


def counting(after: int, event: threading.Event) -> tuple[list[int], Callable[[], bool]]:
    """An ``alive`` callback that sets ``event`` on its ``after``-th call (the client's tries)."""
    tries: list[int] = []

    def alive() -> bool:
        tries.append(1)
        if len(tries) == after:
            event.set()
        return True

    return tries, alive


def client(tmp_path: Path) -> BasculeClient:
    return BasculeClient(tmp_path / "bascule.sock", author="test@cli")


def test_the_client_waits_until_the_daemon_listens_and_answers(
    tmp_path: Path, late_daemon: LateDaemon
) -> None:
    assert (tmp_path / "bascule.sock").exists()  # the file is there from the start
    tries, alive = counting(3, late_daemon.listen)
    with client(tmp_path) as api:
        api.wait_for_answer(30, alive=alive, poll=0.02)
        # refused twice, then a connection dropped unanswered, then the answer
        assert len(tries) >= 4
        assert len(late_daemon.requests) == 1
        assert late_daemon.requests[0].startswith(b"GET /api/v1/auth/whoami ")
        assert api.whoami()["name"] == "admin"  # the same client works on


def test_a_daemon_that_never_answers_is_reported_with_the_log(
    tmp_path: Path, late_daemon: LateDaemon
) -> None:
    log = tmp_path / "bascule.log"
    log.write_text("".join(f"line {n}\n" for n in range(30)) + "level=error msg=boom\n")
    with client(tmp_path) as api, pytest.raises(CliError) as caught:
        wait_for_daemon(api, log, timeout=0.3)
    lines = caught.value.lines
    assert lines[0] == "the daemon did not answer within 0.3 s"
    assert lines[1].startswith(f"cannot reach the Bascule daemon at {tmp_path}/bascule.sock")
    assert f"the last lines of {log}:" in lines
    assert lines[-1] == "  | level=error msg=boom"
    assert "  | line 19" in lines and "  | line 18" not in lines  # the last 12 lines only


def test_a_daemon_that_exits_is_not_waited_for(tmp_path: Path) -> None:
    with client(tmp_path) as api, pytest.raises(CliError, match="exited before it answered"):
        api.wait_for_answer(30, alive=lambda: False)


class DeadDaemon:
    """What ``_start_daemon`` returns for a daemon that died at once."""

    def poll(self) -> int:
        return 1


def test_demo_prints_the_password_first_and_names_the_way_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bascule.main

    def start_daemon(data_dir: Path, log_path: Path, env: dict[str, str]) -> DeadDaemon:
        log_path.write_text('level=error msg="cannot bind 127.0.0.1:8443"\n')
        assert env["BASCULE_ADMIN_PASSWORD"]  # the daemon is told the password chosen
        return DeadDaemon()

    monkeypatch.setattr(bascule.main, "_start_backends", lambda demo_dir: None)
    monkeypatch.setattr(bascule.main, "_start_daemon", start_daemon)
    monkeypatch.delenv("BASCULE_ADMIN_PASSWORD", raising=False)
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path / "data"), "demo"])

    assert result.exit_code == 1, (result.stdout, result.stderr)
    first = result.stdout.splitlines()[0]
    assert first.startswith("The web interface's administrator: user admin, password ")
    assert first.endswith(" (shown once: note it).")
    errors = result.stderr.splitlines()
    assert errors[0] == "error: the daemon exited before it answered"
    assert 'error:   | level=error msg="cannot bind 127.0.0.1:8443"' in errors
    assert "error: the demo was not applied: run `bascule demo` again" in errors
    assert errors[-1] == (
        "error: log in as admin with the password printed above once the daemon runs; if it "
        "is lost, set another with: bascule user passwd admin"
    )
