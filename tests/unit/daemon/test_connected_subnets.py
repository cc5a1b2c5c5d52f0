"""ConnectedSubnets: the networks of the machine's addresses, read through ``ip`` and kept."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

from bascule.daemon.subnets import ConnectedSubnets
from bascule.net.shell import Completed, Ip

ADDRESSES = json.dumps(
    [
        {"ifname": "lo", "addr_info": [{"local": "127.0.0.1", "prefixlen": 8}]},
        {
            "ifname": "eth0",
            "addr_info": [
                {"local": "198.18.0.2", "prefixlen": 24},
                {"local": "198.18.0.100", "prefixlen": 32},
                {"local": "2001:2::2", "prefixlen": 64},
            ],
        },
    ]
)


class Runs:
    def __init__(self, returncode: int = 0) -> None:
        self.argvs: list[Sequence[str]] = []
        self.returncode = returncode

    async def __call__(self, argv: Sequence[str], stdin: str | None) -> Completed:
        self.argvs.append(argv)
        return Completed(returncode=self.returncode, stdout=ADDRESSES, stderr="no ip")


async def test_the_networks_are_read_once_per_ttl() -> None:
    runs, now = Runs(), [0.0]
    subnets = ConnectedSubnets(Ip(runs), ttl=30, clock=lambda: now[0])
    networks = await subnets.networks()
    assert networks == {
        ipaddress.ip_network(n)
        for n in ("127.0.0.0/8", "198.18.0.0/24", "198.18.0.100/32", "2001:2::/64")
    }
    assert runs.argvs == [["ip", "-j", "address", "show"]]
    now[0] = 29.0
    await subnets.networks()
    assert len(runs.argvs) == 1
    now[0] = 31.0
    await subnets.networks()
    assert len(runs.argvs) == 2


async def test_a_failing_ip_means_no_networks() -> None:
    subnets = ConnectedSubnets(Ip(Runs(returncode=1)))
    assert await subnets.networks() == frozenset()
