"""The real-server scripts of ``bascule dsr script``: exact text for the usual cases."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.engines.nftables.dsr import TargetOs, is_dsr, linux_script, script, windows_script
from bascule.model import VirtualService, parse_document


def service(**changes: Any) -> VirtualService:
    document = {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "mode": "l4",
        "forwarding": "dsr",
        "real_servers": [
            {"address": "198.18.0.11", "port": 80},
            {"address": "198.18.0.12", "port": 80},
        ],
        **changes,
    }
    return parse_document({"virtual_services": [document]}).virtual_services[0]


LINUX = """\
#!/bin/sh
# Bascule: set up a real server of the DSR virtual service "web"
# (VIP 198.18.0.100, tcp port 80). Run it as root on each
# real server: 198.18.0.11, 198.18.0.12.
#
# The load balancer hands each client packet to this server unchanged but for its
# Ethernet address: the server must accept packets for the VIP and answer the client
# from it, but never answer ARP for the VIP, or clients would bypass the load balancer.
set -eu

# 1. The VIP on the loopback interface, as a host address.
ip address replace 198.18.0.100/32 dev lo

# 2. Answer ARP only for addresses of the interface asked (arp_ignore=1) and never
#    use the VIP as the source of ARP requests (arp_announce=2). The kernel uses the
#    higher of "all" and the interface's own value; both are set here. IFACE is the
#    interface on the load balancer's segment: the one holding this server's address.
IFACE=${IFACE:-$(for a in 198.18.0.11 198.18.0.12; do ip -o address show to "$a"; done \
| awk '{print $2; exit}')}
: "${IFACE:?holds none of the real server addresses: run with IFACE=<interface>}"
sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
sysctl -w "net.ipv4.conf.$IFACE.arp_ignore=1" "net.ipv4.conf.$IFACE.arp_announce=2"

# 3. rp_filter: leave it loose (2) or off (0) if replies to clients leave by another
#    interface than $IFACE; strict (1) drops the clients' packets arriving on $IFACE.
#    Check: sysctl net.ipv4.conf.all.rp_filter "net.ipv4.conf.$IFACE.rp_filter"

# To keep this across reboots:
#   /etc/sysctl.d/90-bascule-dsr.conf:
#     net.ipv4.conf.all.arp_ignore = 1
#     net.ipv4.conf.all.arp_announce = 2
#   and the VIP on lo, either with ifupdown, a second stanza for lo in
#   /etc/network/interfaces:
#     iface lo inet static
#         address 198.18.0.100/32
#   or with systemd-networkd, /etc/systemd/network/10-bascule-lo.network:
#     [Match]
#     Name=lo
#     [Network]
#     Address=198.18.0.100/32
""".replace("done \\\n| awk", "done | awk")

WINDOWS = """\
# Bascule: set up a real server of the DSR virtual service "web"
# (VIP 198.18.0.100, udp ports 53,5300-5310). Run it in an elevated PowerShell on
# each real server: 198.18.0.11, 198.18.0.12.
# Every setting below persists across reboots.
#
# 0. Once, by hand: add the Microsoft KM-TEST Loopback Adapter. Device Manager > Action >
#    Add legacy hardware > Install the hardware that I manually select > Network
#    adapters > Microsoft > Microsoft KM-TEST Loopback Adapter.
$ErrorActionPreference = "Stop"

# 1. Name the adapters: the loopback adapter, and the NIC holding this server's address.
Get-NetAdapter -InterfaceDescription 'Microsoft KM-TEST Loopback Adapter*' |
    Select-Object -First 1 | Rename-NetAdapter -NewName 'loopback'
$Nic = (Get-NetIPAddress | Where-Object IPAddress -In @('198.18.0.11', '198.18.0.12') |
    Select-Object -First 1).InterfaceAlias

# 2. The VIP on the loopback adapter as a host address, never a source nor in DNS.
New-NetIPAddress -InterfaceAlias 'loopback' -IPAddress 198.18.0.100 -PrefixLength 32 \
-SkipAsSource $true
Set-DnsClient -InterfaceAlias 'loopback' -RegisterThisConnectionsAddress $false

# 3. The weak host model: the NIC accepts packets for the VIP, and the loopback
#    adapter lets replies from the VIP leave through the NIC.
netsh interface ipv4 set interface "$Nic" weakhostreceive=enabled
netsh interface ipv4 set interface loopback weakhostreceive=enabled weakhostsend=enabled

# 4. Let clients through the Windows Firewall to the VIP.
New-NetFirewallRule -DisplayName 'Bascule DSR web' -Direction Inbound -Protocol UDP \
-LocalAddress 198.18.0.100 -LocalPort '53', '5300-5310' -Action Allow
""".replace(" \\\n-", " -")


def test_linux_script_exact() -> None:
    assert linux_script(service()) == LINUX
    assert script(service(), TargetOs.linux) == LINUX


def test_windows_script_exact_with_udp_and_extra_ports() -> None:
    vs = service(
        protocol="udp",
        port=53,
        extra_ports=["5300-5310"],
        check={"type": "none"},
        real_servers=[
            {"address": "198.18.0.11", "port": 53},
            {"address": "198.18.0.12", "port": 53},
        ],
    )
    assert windows_script(vs) == WINDOWS
    assert script(vs, TargetOs.windows) == WINDOWS


def test_ipv6_puts_a_128_on_lo_and_needs_no_arp_settings() -> None:
    vs = service(
        address="2001:db8::100",
        real_servers=[{"address": "2001:db8::11", "port": 80}],
    )
    text = linux_script(vs)
    assert "ip -6 address replace 2001:db8::100/128 dev lo\n" in text
    assert "arp_ignore" not in text
    assert "#     Address=2001:db8::100/128\n" in text
    windows = windows_script(vs)
    assert "-IPAddress 2001:db8::100 -PrefixLength 128 " in windows
    assert 'netsh interface ipv6 set interface "$Nic" weakhostreceive=enabled' in windows


def test_without_real_servers_iface_must_be_given() -> None:
    empty = linux_script(service(real_servers=[]))
    assert "\nIFACE=${IFACE:-}\n" in empty
    assert "# real server: (none listed yet)." in empty


def test_the_linux_script_is_valid_posix_shell() -> None:
    import shutil
    import subprocess

    shell = shutil.which("dash") or shutil.which("sh")
    if shell is None:
        pytest.skip("no POSIX shell")
    done = subprocess.run([shell, "-n"], input=LINUX, text=True, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "changes", [{"forwarding": "nat"}, {"mode": "l7", "forwarding": "nat", "type": "http"}]
)
def test_only_dsr_services_have_a_script(changes: dict[str, Any]) -> None:
    vs = service(**changes)
    assert not is_dsr(vs)
    with pytest.raises(ValueError, match="is not a DSR service"):
        linux_script(vs)
    with pytest.raises(ValueError, match="is not a DSR service"):
        windows_script(vs)
