"""Documents and facts shared by the unit tests of the nftables modules (not a test module)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bascule.engines.nftables.view import Environment
from bascule.model import Configuration
from bascule.net.shell import Completed

MACS = {f"198.18.0.{i}": f"02:00:00:00:00:{i}" for i in (11, 12, 13)}
ENV = Environment(lb_mac="02:00:00:00:00:02", server_macs=MACS, maglev_size=31)
OK = Completed(returncode=0, stdout="", stderr="")


def config(**fields: Any) -> Configuration:
    """One ``mode: l4`` service ``web`` on 198.18.0.100:80 with three real servers."""
    service = {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "mode": "l4",
        "real_servers": [
            {"address": "198.18.0.11", "port": 80},
            {"address": "198.18.0.12", "port": 80},
            {"address": "198.18.0.13", "port": 80},
        ],
        **fields,
    }
    return Configuration.model_validate({"virtual_services": [service]})


class FakeRunner:
    """A ``Runner`` that answers by the first prefix of the command line that matches (OK
    otherwise) and records every call."""

    def __init__(self, answers: dict[str, Completed] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[list[str], str | None]] = []

    async def __call__(self, argv: Sequence[str], stdin: str | None) -> Completed:
        self.calls.append((list(argv), stdin))
        for prefix, answer in self.answers.items():
            if " ".join(argv).startswith(prefix):
                return answer
        return OK

    def ran(self, prefix: str) -> list[list[str]]:
        return [argv for argv, _ in self.calls if " ".join(argv).startswith(prefix)]
