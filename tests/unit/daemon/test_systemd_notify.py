"""The daemon's side of sd_notify(3), against a fake service manager: a real datagram socket
bound where ``NOTIFY_SOCKET`` points, read as systemd would."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bascule.daemon.systemd import Notifier, journal_stream


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[socket.socket]:
    """The service manager's end: a datagram socket at ``tmp_path/notify``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        sock.settimeout(2.0)
        yield sock


def received(sock: socket.socket) -> dict[str, str]:
    message = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in message.splitlines())


def test_ready_status_and_stopping_reach_the_manager(manager: socket.socket) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": manager.getsockname()})
    assert notifier.enabled
    assert notifier.ready("serving: the engines run the current revision")
    assert received(manager) == {
        "READY": "1",
        "STATUS": "serving: the engines run the current revision",
        "MAINPID": str(os.getpid()),
    }
    assert notifier.status("two\nlines")
    assert received(manager) == {"STATUS": "two lines"}  # one datagram line per assignment
    assert notifier.stopping("stopping the daemon; the data plane keeps running")
    assert received(manager)["STOPPING"] == "1"


def test_an_abstract_socket_is_named_with_an_at_sign() -> None:
    name = f"bascule-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2.0)
        assert Notifier({"NOTIFY_SOCKET": f"@{name}"}).ready("up")
        assert received(sock)["READY"] == "1"


def test_without_a_manager_every_notification_is_a_no_op(tmp_path: Path) -> None:
    assert not Notifier({}).enabled
    assert not Notifier({}).ready("up")
    # a socket that is gone: logged, never raised (a lost notification must not stop us)
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert gone.enabled
    assert not gone.ready("up")


def test_the_watchdog_pings_at_half_its_timeout(manager: socket.socket) -> None:
    env = {"NOTIFY_SOCKET": manager.getsockname(), "WATCHDOG_USEC": "200000"}
    notifier = Notifier(env)
    assert notifier.watchdog_interval == pytest.approx(0.1)

    async def three_pings() -> float:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(notifier.watchdog())
        start = loop.time()
        try:
            for _ in range(3):
                message = await loop.sock_recv(manager, 4096)
                assert message == b"WATCHDOG=1"
            return loop.time() - start
        finally:
            task.cancel()

    manager.setblocking(False)
    elapsed = asyncio.run(three_pings())
    assert elapsed >= 0.19  # the first at once, then every 0.1 s


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_interval(env: dict[str, str], interval: float | None) -> None:
    assert Notifier({"NOTIFY_SOCKET": "/run/x", **env}).watchdog_interval == interval


def test_the_watchdog_does_nothing_without_a_manager() -> None:
    asyncio.run(asyncio.wait_for(Notifier({"WATCHDOG_USEC": "1000"}).watchdog(), 1.0))


def test_journal_stream_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    path = tmp_path / "stream"
    with path.open("w") as file:
        stat = os.fstat(file.fileno())
        own = {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}
        assert journal_stream(own, fd=file.fileno())
        assert not journal_stream({"JOURNAL_STREAM": f"{stat.st_dev}:1"}, fd=file.fileno())
        assert not journal_stream({}, fd=file.fileno())
        assert not journal_stream({"JOURNAL_STREAM": "garbage"}, fd=file.fileno())
