"""Port clashes between virtual services, found in n log n (pure; used by document.py).

Two services clash when they share a protocol, an address (or one of them listens on the
wildcard address of that family, 0.0.0.0 or ::) and a port. Comparing every pair was quadratic:
10,000 services on one VIP took 29 s of CPU to validate, on the daemon's event loop. Here each
(protocol, address) keeps the port ranges it holds so far as a sorted list of disjoint ranges
(a clashing range is reported and not added, so they stay disjoint), searched by bisection;
and each (protocol, family) keeps how many specific-address ranges cover each port in a
Fenwick tree, so a wildcard service learns in O(log 65536) whether anything clashes before
any list is walked. What is reported: for each range of a service, every earlier service
that holds an overlapping range, with the first such range (a range that clashed is not held,
so a third service on the same port is reported against the first only).
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from bascule.model.capabilities import Protocol
from bascule.model.virtual_service import PortRange, VirtualService

_PORTS = 65536


@dataclass(frozen=True, kw_only=True)
class PortClash:
    """Range ``position`` of service ``index`` (0: its ``port``, else ``extra_ports[p - 1]``)
    overlaps range ``clash`` of the earlier service ``other``."""

    index: int
    address: str  # the VIP of ``index`` that clashes (one of a dual-stack service's two)
    position: int
    other: int
    clash: PortRange


@dataclass(frozen=True)
class _Held:
    first: int
    last: int
    service: int
    position: int
    range: PortRange


@dataclass
class _Ranges:
    """Disjoint port ranges held on one (protocol, address), sorted by first port."""

    firsts: list[int] = field(default_factory=list)
    held: list[_Held] = field(default_factory=list)

    def overlapping(self, wanted: PortRange) -> list[_Held]:
        # Disjoint and sorted by first port, so sorted by last port too: walk back from the
        # last range that starts within ``wanted`` while ranges still reach into it.
        found = []
        at = bisect.bisect_right(self.firsts, wanted.last) - 1
        while at >= 0 and self.held[at].last >= wanted.first:
            found.append(self.held[at])
            at -= 1
        return found

    def add(self, held: _Held) -> None:
        at = bisect.bisect_left(self.firsts, held.first)
        self.firsts.insert(at, held.first)
        self.held.insert(at, held)


@dataclass
class _Coverage:
    """How many held ranges cover each port: range add and range sum in O(log n) (two Fenwick
    trees, the usual construction)."""

    linear: list[int] = field(default_factory=lambda: [0] * (_PORTS + 1))
    constant: list[int] = field(default_factory=lambda: [0] * (_PORTS + 1))

    def add(self, first: int, last: int) -> None:
        self._update(first, 1, first - 1)
        self._update(last + 1, -1, -last)

    def any_in(self, first: int, last: int) -> bool:
        return self._prefix(last) - self._prefix(first - 1) > 0

    def _update(self, at: int, slope: int, offset: int) -> None:
        while at <= _PORTS:
            self.linear[at] += slope
            self.constant[at] += offset
            at += at & -at

    def _prefix(self, at: int) -> int:
        slope = offset = 0
        position = at
        while position > 0:
            slope += self.linear[position]
            offset += self.constant[position]
            position -= position & -position
        return slope * at - offset


def port_clashes(services: Sequence[VirtualService], *, limit: int) -> Iterator[PortClash]:
    """The clashes between ``services``, in order, at most ``limit`` of them."""
    by_address: dict[tuple[str, str], _Ranges] = {}
    wildcards: dict[tuple[str, int], _Ranges] = {}
    coverage: dict[tuple[str, int], _Coverage] = {}
    addresses_of_family: dict[tuple[str, int], list[_Ranges]] = {}
    found = 0
    for index, vs in enumerate(services):
        # each VIP of a dual-stack service is checked on its own (one per family)
        for vip in vs.addresses:
            address = ipaddress.ip_address(vip)
            proto = Protocol(vs.protocol).value
            family = (proto, address.version)
            wildcard = address.is_unspecified
            if wildcard:
                if family not in wildcards:
                    wildcards[family] = _Ranges()
                own = wildcards[family]
            else:
                key = (proto, str(address))
                if key not in by_address:
                    by_address[key] = _Ranges()
                    addresses_of_family.setdefault(family, []).append(by_address[key])
                own = by_address[key]
            for position, mine in enumerate(vs.port_ranges):
                overlaps = [held for held in own.overlapping(mine) if held.service != index]
                own_overlap = len(overlaps) < len(own.overlapping(mine))
                if wildcard:
                    family_coverage = coverage.get(family)
                    if family_coverage is not None and family_coverage.any_in(
                        mine.first, mine.last
                    ):
                        for ranges in addresses_of_family.get(family, []):
                            overlaps.extend(ranges.overlapping(mine))
                elif family in wildcards:
                    overlaps.extend(wildcards[family].overlapping(mine))
                firsts: dict[int, _Held] = {}
                for held in overlaps:
                    if held.service not in firsts or held.position < firsts[held.service].position:
                        firsts[held.service] = held
                for other in sorted(firsts):
                    yield PortClash(
                        index=index,
                        address=vip,
                        position=position,
                        other=other,
                        clash=firsts[other].range,
                    )
                    found += 1
                    if found >= limit:
                        return
                if not firsts and not own_overlap:
                    own.add(
                        _Held(
                            first=mine.first,
                            last=mine.last,
                            service=index,
                            position=position,
                            range=mine,
                        )
                    )
                    if not wildcard:
                        if family not in coverage:
                            coverage[family] = _Coverage()
                        coverage[family].add(mine.first, mine.last)
