"""What a real server needs for Direct Server Return, as the commands to run on it (pure).

Where it sits: ``bascule dsr script VS`` (API ``GET .../dsr/script``) prints this module's
text for a ``forwarding: dsr`` virtual service. It lives with the nftables engine because
it follows from how that engine forwards DSR (view.py): at the netdev ingress hook it only
rewrites the Ethernet addresses of a client's frame, so the frame reaches the real server
still addressed to the VIP, and the server answers the client from the VIP directly. Hence
each real server must

- accept packets for the VIP: the VIP on its loopback interface, as a host address;
- never claim the VIP on the segment, or clients would bypass the load balancer: Linux
  ``arp_ignore=1`` (answer ARP only for addresses of the interface asked) and
  ``arp_announce=2`` (never use the VIP as the source of its own ARP requests), see the
  kernel's Documentation/networking/ip-sysctl.rst; IPv6 needs nothing more, as Linux answers
  neighbour solicitations only for addresses of the interface asked;
- on Windows, hold the VIP on the Microsoft KM-TEST Loopback Adapter (whose addresses are
  never announced on the wire) and use the weak host model so the NIC accepts packets for
  it and replies leave from it, as Microsoft, KEMP and others document.

Nothing here does I/O; the text is a function of the virtual service only.
"""

from __future__ import annotations

import enum
import ipaddress

from bascule.model import Forwarding, Mode, VirtualService


class TargetOs(enum.StrEnum):
    linux = "linux"
    windows = "windows"


def is_dsr(vs: VirtualService) -> bool:
    return vs.mode is Mode.l4 and vs.forwarding is Forwarding.dsr


def script(vs: VirtualService, target: TargetOs) -> str:
    """The setup script for ``target``'s real servers of the DSR service ``vs``."""
    return linux_script(vs) if target is TargetOs.linux else windows_script(vs)


def _version(vs: VirtualService) -> int:
    return ipaddress.ip_address(vs.address).version


def _server_addresses(vs: VirtualService) -> list[str]:
    """The real servers' addresses of the VIP's family, once each, in document order."""
    version = _version(vs)
    found: list[str] = []
    for rs in vs.real_servers:
        if ipaddress.ip_address(rs.address).version == version and rs.address not in found:
            found.append(rs.address)
    return found


def _ports(vs: VirtualService) -> str:
    return ",".join(str(r) for r in vs.port_ranges)


def _port_words(vs: VirtualService) -> str:
    """``tcp port 80`` or ``udp ports 53,5353``."""
    ranges = vs.port_ranges
    plural = "s" if len(ranges) > 1 or ranges[0].first != ranges[0].last else ""
    return f"{vs.protocol.value} port{plural} {_ports(vs)}"


def _require_dsr(vs: VirtualService) -> None:
    if not is_dsr(vs):
        raise ValueError(f"{vs.name} is not a DSR service (mode: l4, forwarding: dsr)")


def linux_script(vs: VirtualService) -> str:
    """A POSIX shell script for a Linux real server of ``vs`` (idempotent: run it again)."""
    _require_dsr(vs)
    v6 = _version(vs) == 6
    servers = _server_addresses(vs)
    prefix = 128 if v6 else 32
    family = "-6 " if v6 else ""
    lines = [
        "#!/bin/sh",
        f'# Bascule: set up a real server of the DSR virtual service "{vs.name}"',
        f"# (VIP {vs.address}, {_port_words(vs)}). Run it as root on each",
        f"# real server: {', '.join(servers) if servers else '(none listed yet)'}.",
        "#",
        "# The load balancer hands each client packet to this server unchanged but for its",
        "# Ethernet address: the server must accept packets for the VIP and answer the client",
        "# from it, but never answer ARP for the VIP, or clients would bypass the load balancer.",
        "set -eu",
        "",
        "# 1. The VIP on the loopback interface, as a host address.",
        f"ip {family}address replace {vs.address}/{prefix} dev lo",
    ]
    if v6:
        lines += [
            "",
            "# 2. Nothing else: Linux answers IPv6 neighbour solicitations only for addresses",
            "#    of the interface asked, so the VIP on lo stays quiet on the segment.",
            "",
            "# To keep this across reboots, either",
            "#   ifupdown, a second stanza for lo in /etc/network/interfaces:",
            "#     iface lo inet6 static",
            f"#         address {vs.address}/128",
            "#   or systemd-networkd, /etc/systemd/network/10-bascule-lo.network:",
            "#     [Match]",
            "#     Name=lo",
            "#     [Network]",
            f"#     Address={vs.address}/128",
        ]
        return "\n".join(lines) + "\n"
    if servers:
        loop = f'for a in {" ".join(servers)}; do ip -o address show to "$a"; done'
        detect = f"IFACE=${{IFACE:-$({loop} | awk '{{print $2; exit}}')}}"
    else:
        detect = "IFACE=${IFACE:-}"
    lines += [
        "",
        "# 2. Answer ARP only for addresses of the interface asked (arp_ignore=1) and never",
        "#    use the VIP as the source of ARP requests (arp_announce=2). The kernel uses the",
        '#    higher of "all" and the interface\'s own value; both are set here. IFACE is the',
        "#    interface on the load balancer's segment: the one holding this server's address.",
        detect,
        ': "${IFACE:?holds none of the real server addresses: run with IFACE=<interface>}"',
        "sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2",
        'sysctl -w "net.ipv4.conf.$IFACE.arp_ignore=1" "net.ipv4.conf.$IFACE.arp_announce=2"',
        "",
        "# 3. rp_filter: leave it loose (2) or off (0) if replies to clients leave by another",
        "#    interface than $IFACE; strict (1) drops the clients' packets arriving on $IFACE.",
        '#    Check: sysctl net.ipv4.conf.all.rp_filter "net.ipv4.conf.$IFACE.rp_filter"',
        "",
        "# To keep this across reboots:",
        "#   /etc/sysctl.d/90-bascule-dsr.conf:",
        "#     net.ipv4.conf.all.arp_ignore = 1",
        "#     net.ipv4.conf.all.arp_announce = 2",
        "#   and the VIP on lo, either with ifupdown, a second stanza for lo in",
        "#   /etc/network/interfaces:",
        "#     iface lo inet static",
        f"#         address {vs.address}/32",
        "#   or with systemd-networkd, /etc/systemd/network/10-bascule-lo.network:",
        "#     [Match]",
        "#     Name=lo",
        "#     [Network]",
        f"#     Address={vs.address}/32",
    ]
    return "\n".join(lines) + "\n"


def windows_script(vs: VirtualService) -> str:
    """A PowerShell script for a Windows Server (2012 or later) real server of ``vs``."""
    _require_dsr(vs)
    v6 = _version(vs) == 6
    servers = _server_addresses(vs)
    prefix = 128 if v6 else 32
    stack = "ipv6" if v6 else "ipv4"
    quoted = ", ".join(f"'{address}'" for address in servers)
    lines = [
        f'# Bascule: set up a real server of the DSR virtual service "{vs.name}"',
        f"# (VIP {vs.address}, {_port_words(vs)}). Run it in an elevated PowerShell on",
        f"# each real server: {', '.join(servers) if servers else '(none listed yet)'}.",
        "# Every setting below persists across reboots.",
        "#",
        "# 0. Once, by hand: add the Microsoft KM-TEST Loopback Adapter. Device Manager > Action >",
        "#    Add legacy hardware > Install the hardware that I manually select > Network",
        "#    adapters > Microsoft > Microsoft KM-TEST Loopback Adapter.",
        '$ErrorActionPreference = "Stop"',
        "",
        "# 1. Name the adapters: the loopback adapter, and the NIC holding this server's address.",
        "Get-NetAdapter -InterfaceDescription 'Microsoft KM-TEST Loopback Adapter*' |",
        "    Select-Object -First 1 | Rename-NetAdapter -NewName 'loopback'",
        f"$Nic = (Get-NetIPAddress | Where-Object IPAddress -In @({quoted}) |",
        "    Select-Object -First 1).InterfaceAlias",
        "",
        "# 2. The VIP on the loopback adapter as a host address, never a source nor in DNS.",
        f"New-NetIPAddress -InterfaceAlias 'loopback' -IPAddress {vs.address} "
        f"-PrefixLength {prefix} -SkipAsSource $true",
        "Set-DnsClient -InterfaceAlias 'loopback' -RegisterThisConnectionsAddress $false",
        "",
        "# 3. The weak host model: the NIC accepts packets for the VIP, and the loopback",
        "#    adapter lets replies from the VIP leave through the NIC.",
        f'netsh interface {stack} set interface "$Nic" weakhostreceive=enabled',
        f"netsh interface {stack} set interface loopback weakhostreceive=enabled "
        "weakhostsend=enabled",
        "",
        "# 4. Let clients through the Windows Firewall to the VIP.",
        f"New-NetFirewallRule -DisplayName 'Bascule DSR {vs.name}' -Direction Inbound "
        f"-Protocol {vs.protocol.value.upper()} -LocalAddress {vs.address} "
        f"-LocalPort {', '.join(repr(str(r)) for r in vs.port_ranges)} -Action Allow",
    ]
    return "\n".join(lines) + "\n"
