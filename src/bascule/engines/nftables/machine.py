"""The machine under Bascule's L4 tables: the facts the view needs that the model does not
hold, and the kernel settings NAT needs.

Where this sits in the flow of a change: before the nftables engine builds a ruleset it asks
its ``Machine`` for the ``Environment`` of the view (the DSR interface, the load balancer's
MAC on it, the DSR real servers' MACs); ``check`` refuses a document whose DSR real servers
are not on a connected subnet, and ``prepare_nat`` turns on what NAT forwarding needs. Every
question goes to the machine through the engine's shell (iproute2, ping, sysctl), in the
network namespace the engine runs in.

DSR real servers' MAC addresses are resolved on the load balancer's interface towards them
(ping, then the neighbour table) when a configuration is applied and refreshed every
``MAC_REFRESH`` seconds (``resolve_macs``). A server whose MAC cannot be found is not refused:
the view leaves it out of the maps (``Exclusion.no_mac``), the status shows it down with the
reason, and it joins as soon as a refresh finds it. A DSR real server that is not on a
directly connected subnet is refused by ``check`` (EngineRejected naming it): no refresh can
fix that.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping

from bascule.engines.nftables.shell import NftablesShell
from bascule.engines.nftables.view import Environment, l4_services
from bascule.errors import EngineRejected
from bascule.model import Configuration, Forwarding

log = logging.getLogger("bascule.nftables")

MAC_REFRESH = 10.0  # seconds between two resolutions of the DSR real servers' MACs
DEFAULT_INTERFACE = "eth0"


class Machine:
    """What the L4 engine knows of the machine; the engine's lock guards every call."""

    def __init__(
        self, shell: NftablesShell, *, interface: str | None, clock: Callable[[], float]
    ) -> None:
        self._shell = shell
        self._interface = interface  # None: the device of the route to the DSR servers
        self._clock = clock
        self._dsr_interface: str | None = None
        self._macs: dict[str, str] = {}  # DSR real server address -> MAC
        self._lb_macs: dict[str, str] = {}  # interface -> its MAC
        self._macs_at: float | None = None
        self._sysctls_done: set[str] = set()
        self._devices: dict[str, str | None] = {}  # real server address -> interface to it
        self._connected: dict[str, float] = {}  # DSR real server address -> when found on-link

    def environment(self, *, maglev_size: int) -> Environment:
        """The view's facts of the machine, as last found."""
        interface = self._dsr_interface or self._interface or DEFAULT_INTERFACE
        return Environment(
            interface=interface,
            lb_mac=self._lb_macs.get(interface),
            server_macs=dict(self._macs),
            maglev_size=maglev_size,
        )

    def refresh_due(self) -> bool:
        """Whether the DSR real servers' MACs are due to be asked again."""
        return self._macs_at is None or self._clock() - self._macs_at >= MAC_REFRESH

    async def check(self, config: Configuration) -> None:
        """DSR rewrites MACs only: every DSR real server must be on a connected subnet.

        A server found on-link is not asked again for ``MAC_REFRESH`` seconds: every change
        is checked (adding a server to a NAT service too), and each ``ip route get`` is a
        process; a server found routed or unroutable is asked again at every check."""
        now = self._clock()
        connected: dict[str, float] = {}  # of this document's servers only
        for vs in l4_services(config, Forwarding.dsr):
            for rs in vs.real_servers:
                found = self._connected.get(rs.address)
                if found is not None and now - found < MAC_REFRESH:
                    connected[rs.address] = found
                    continue
                route = await self._shell.route_to(rs.address)
                if route is None or route.gateway is not None:
                    via = f"routed via {route.gateway}" if route else "no route to it"
                    raise EngineRejected(
                        "nftables",
                        f"{vs.name}: DSR real server {rs.key} is not on a directly connected "
                        f"subnet ({via}); DSR needs it on the load balancer's own segment",
                    )
                connected[rs.address] = now
        self._connected = connected

    async def resolve_macs(self, config: Configuration, *, refresh: bool) -> None:
        """The load balancer's and the DSR real servers' MACs; ``refresh`` asks again for the
        known ones too."""
        dsr = l4_services(config, Forwarding.dsr)
        if not dsr:
            return
        if self._dsr_interface is None:
            self._dsr_interface = self._interface
            if self._dsr_interface is None:
                first = next((rs for vs in dsr for rs in vs.real_servers), None)
                route = await self._shell.route_to(first.address) if first else None
                self._dsr_interface = route.interface if route else DEFAULT_INTERFACE
        interfaces = {vs.interface or self._dsr_interface for vs in dsr}
        for interface in interfaces | {self._dsr_interface}:
            if interface not in self._lb_macs:
                self._lb_macs[interface] = await self._shell.interface_mac(interface)
        for vs in dsr:
            for rs in vs.real_servers:
                if rs.address in self._macs and not refresh:
                    continue
                mac = await self._shell.mac_of(rs.address, vs.interface or self._dsr_interface)
                if mac is None:
                    if self._macs.pop(rs.address, None) is not None or not refresh:
                        log.warning(
                            "no MAC address for a DSR real server",
                            extra={"vs": vs.name, "rs": rs.key},
                        )
                else:
                    self._macs[rs.address] = mac
        if refresh:
            self._macs_at = self._clock()

    async def prepare_nat(self, config: Configuration) -> None:
        """NAT forwards packets: IP forwarding on, ICMP redirects off (they would send the
        client straight to a real server, which has no VIP), each sysctl set once."""
        nat = l4_services(config, Forwarding.nat)
        if not nat:
            return
        wanted = {
            "net.ipv4.conf.all.send_redirects": "0",
            "net.ipv4.conf.default.send_redirects": "0",
        }
        versions = {ipaddress.ip_address(vip).version for vs in nat for vip in vs.addresses}
        if 4 in versions:
            wanted["net.ipv4.ip_forward"] = "1"
        if 6 in versions:
            wanted["net.ipv6.conf.all.forwarding"] = "1"
        for vs in nat:
            for rs in vs.real_servers:
                device = vs.interface or await self._device_to(rs.address)
                if device:
                    # the effective value is "all" OR the interface's (IN_DEV_ORCONF)
                    wanted[f"net.ipv4.conf.{device}.send_redirects"] = "0"
        await self._set_once(wanted, "set the network prerequisites of L4 NAT")

    async def _device_to(self, address: str) -> str | None:
        """The interface towards ``address``, asked once: every apply (a weight change too)
        comes here, and a 100-server service would otherwise start 100 ``ip route get``."""
        if address not in self._devices:
            route = await self._shell.route_to(address)
            self._devices[address] = route.interface if route else None
        return self._devices[address]

    async def account_flows(self, config: Configuration) -> None:
        """Conntrack counts each NAT flow's packets and bytes (the servers' traffic, see
        conntrack.py). Once the NAT table is in: it loads conntrack, whose sysctls appear
        with it."""
        if l4_services(config, Forwarding.nat):
            wanted = {"net.netfilter.nf_conntrack_acct": "1"}
            await self._set_once(wanted, "turned conntrack's accounting on")

    async def _set_once(self, wanted: Mapping[str, str], what: str) -> None:
        todo = {key: value for key, value in wanted.items() if key not in self._sysctls_done}
        if not todo:
            return
        await self._shell.set_sysctls(todo)
        self._sysctls_done.update(todo)
        log.info(what, extra={"sysctls": todo})
