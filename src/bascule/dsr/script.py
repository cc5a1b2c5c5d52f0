"""What a real server needs for Direct Server Return, as the commands to run on it (pure).

Where it sits: ``bascule dsr script VS`` (API ``GET .../dsr/script``) prints this module's
text for a ``forwarding: dsr`` virtual service. It follows from how the nftables engine
forwards DSR (engines/nftables/rules.py): at the netdev ingress hook it only rewrites the
Ethernet addresses of a client's frame, so the frame reaches the real server still addressed
to the VIP, and the server answers the client from the VIP directly. Hence each real server
must

- accept packets for the VIP: the VIP on its loopback interface, as a host address;
- never claim the VIP on the segment, or clients would bypass the load balancer: Linux
  ``arp_ignore=1`` (answer ARP only for addresses of the interface asked) and
  ``arp_announce=2`` (never use the VIP as the source of its own ARP requests), see the
  kernel's Documentation/networking/ip-sysctl.rst; IPv6 needs nothing more, as Linux answers
  neighbour solicitations only for addresses of the interface asked; a dual-stack service's
  server holds both VIPs;
- on Windows, hold the VIP on the Microsoft KM-TEST Loopback Adapter (whose addresses are
  never announced on the wire) and use the weak host model so the NIC accepts packets for
  it and replies leave from it, as Microsoft, KEMP and others document.

Every decision is made here, in ``setup``: a ``RealServerSetup`` value; the templates in
``templates/`` only print it (one Jinja2 environment, as the HAProxy renderer's: no HTML
autoescaping, since a script is not HTML, and StrictUndefined). The values printed are the
model's validated names, addresses and ports. Golden files: tests/golden/dsr/.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bascule.config_templates import config_environment
from bascule.dsr.target import TargetOs
from bascule.model import Forwarding, Mode, VirtualService
from bascule.net.addresses import host_prefix

_ENVIRONMENT = config_environment("bascule.dsr")

TEMPLATES = {TargetOs.linux: "linux.sh.j2", TargetOs.windows: "windows.ps1.j2"}


@dataclass(frozen=True, kw_only=True)
class RealServerSetup:
    """Everything a real-server script says, decided; the template prints it."""

    name: str
    vip: str
    ipv6: bool
    host_address: str  # the VIP as a host address: 198.18.0.100/32, 2001:db8::1/128
    prefix: int  # 32 or 128
    stack: str  # netsh's name of the IP stack: ipv4 or ipv6
    ports: str  # "tcp port 80", "udp ports 53,5300-5310"
    protocol: str  # TCP or UDP, as Windows' firewall spells it
    local_ports: str  # PowerShell's -LocalPort list: '53', '5300-5310'
    # dual-stack (address6): the IPv6 VIP the server holds too; None for one VIP
    vip6: str | None
    host_address6: str | None  # 2001:db8::1/128
    servers: tuple[str, ...]  # the real servers' addresses, once each
    servers_text: str  # for a comment: "198.18.0.11, 198.18.0.12" or "(none listed yet)"
    servers_words: str  # for a shell loop: "198.18.0.11 198.18.0.12"
    servers_quoted: str  # for PowerShell: '198.18.0.11', '198.18.0.12'


def is_dsr(vs: VirtualService) -> bool:
    return vs.mode is Mode.l4 and vs.forwarding is Forwarding.dsr


def setup(vs: VirtualService) -> RealServerSetup:
    """The decisions behind the scripts for the DSR service ``vs``; ValueError otherwise."""
    if not is_dsr(vs):
        raise ValueError(f"{vs.name} is not a DSR service (mode: l4, forwarding: dsr)")
    version = ipaddress.ip_address(vs.address).version
    # DSR rewrites only MACs: a server serves every VIP it holds, whatever the family of the
    # address it is checked and reached on (engines/nftables/view.py)
    servers = tuple(dict.fromkeys(rs.address for rs in vs.real_servers))
    ranges = vs.port_ranges
    plural = "s" if len(ranges) > 1 or ranges[0].first != ranges[0].last else ""
    return RealServerSetup(
        name=vs.name,
        vip=vs.address,
        ipv6=version == 6,
        host_address=host_prefix(vs.address),
        vip6=vs.address6,
        host_address6=None if vs.address6 is None else host_prefix(vs.address6),
        prefix=128 if version == 6 else 32,
        stack=f"ipv{version}",
        ports=f"{vs.protocol.value} port{plural} {','.join(str(r) for r in ranges)}",
        protocol=vs.protocol.value.upper(),
        local_ports=", ".join(f"'{r}'" for r in ranges),
        servers=servers,
        servers_text=", ".join(servers) if servers else "(none listed yet)",
        servers_words=" ".join(servers),
        servers_quoted=", ".join(f"'{address}'" for address in servers),
    )


def script(vs: VirtualService, target: TargetOs) -> str:
    """The setup script for ``target``'s real servers of the DSR service ``vs``."""
    return _ENVIRONMENT.get_template(TEMPLATES[target]).render(setup=setup(vs))


def linux_script(vs: VirtualService) -> str:
    """A POSIX shell script for a Linux real server of ``vs`` (idempotent: run it again)."""
    return script(vs, TargetOs.linux)


def windows_script(vs: VirtualService) -> str:
    """A PowerShell script for a Windows Server (2012 or later) real server of ``vs``."""
    return script(vs, TargetOs.windows)
