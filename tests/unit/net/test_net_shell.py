"""net/shell.py: the command runner (real processes) and ``Ip`` over a fake runner."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bascule.errors import EngineError
from bascule.net.shell import Completed, Ip, subprocess_runner


async def test_the_runner_passes_stdin_and_returns_the_output() -> None:
    run = subprocess_runner()
    done = await run(["cat"], "hello")
    assert done == Completed(returncode=0, stdout="hello", stderr="")
    failed = await run(["sh", "-c", "echo oops >&2; exit 3"], None)
    assert (failed.returncode, failed.stderr) == (3, "oops\n")


async def test_a_command_that_does_not_end_or_cannot_start_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match=r"sleep 30: no answer within 0.2s"):
        await subprocess_runner(timeout=0.2)(["sleep", "30"], None)
    with pytest.raises(EngineError, match="cannot run bascule-no-such-command"):
        await subprocess_runner()(["bascule-no-such-command"], None)


class FakeIp:
    """Plays ``ip``: every call is recorded, ``route get`` of an unknown address fails."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def __call__(self, argv: Sequence[str], stdin: str | None) -> Completed:
        self.calls.append(list(argv))
        if argv[:4] == ["ip", "-j", "route", "get"] and argv[4] != "198.18.0.11":
            return Completed(returncode=2, stdout="", stderr="RTNETLINK answers: unreachable")
        if argv[:4] == ["ip", "-j", "route", "get"]:
            return Completed(returncode=0, stdout='[{"dev": "eth0"}]', stderr="")
        if argv[:3] == ["ip", "-j", "link"] and "eth9" in argv:
            return Completed(returncode=1, stdout="", stderr='Device "eth9" does not exist.')
        return Completed(returncode=0, stdout="[]", stderr="")


async def test_ip_spells_each_command_and_says_what_failed() -> None:
    runner = FakeIp()
    ip = Ip(runner)

    assert (await ip.addresses()).addresses == ()
    assert await ip.neighbours("eth0", address="198.18.0.11") == ()
    route = await ip.route("198.18.0.11")
    assert route is not None and route.interface == "eth0"
    assert await ip.route("198.19.255.1") is None  # no route is an answer, not an error
    with pytest.raises(EngineError, match='ip link show dev eth9: Device "eth9" does not exist'):
        await ip.links("eth9")
    await ip.add_host_address("2001:2::100", "eth0")
    await ip.delete_host_address("198.18.0.100", "eth0")

    assert runner.calls == [
        ["ip", "-j", "address", "show"],
        ["ip", "-j", "neigh", "show", "to", "198.18.0.11", "dev", "eth0"],
        ["ip", "-j", "route", "get", "198.18.0.11"],
        ["ip", "-j", "route", "get", "198.19.255.1"],
        ["ip", "-j", "link", "show", "dev", "eth9"],
        ["ip", "address", "add", "2001:2::100/128", "dev", "eth0", "nodad", "preferred_lft", "0"],
        ["ip", "address", "del", "198.18.0.100/32", "dev", "eth0"],
    ]
