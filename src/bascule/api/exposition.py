"""The status in Prometheus's text exposition format 0.0.4 (prometheus-client), for /metrics.

Gauges and counters labelled by ``virtual_service`` and ``real_server`` (``address:port``).
Counters are the engines' own totals: they restart from zero when HAProxy reloads or an
nftables ruleset is replaced, which Prometheus's ``rate()`` handles as a counter reset.
Imported by the route's handler at the first scrape (api/routes/metrics.py): prometheus-client
costs ~0.8 MiB resident that a daemon nobody scrapes need not hold (issue 15).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bascule.daemon.results import StatusReport
from bascule.reconcile.status import ServerStatus, ServiceStatus

_VS = ["virtual_service"]
_RS = ["virtual_service", "real_server"]


class StatusCollector(Collector):
    """One status report as metric families (a fresh collector per scrape)."""

    def __init__(self, report: StatusReport, expiry: Mapping[str, float] | None = None) -> None:
        """``expiry``: seconds until each entry of the certificate store expires."""
        self.report = report
        self.expiry = expiry or {}

    def collect(self) -> Iterator[Metric]:
        report = self.report
        yield _gauge("bascule_revision", "The current revision (0: none yet)", report.revision or 0)
        yield _gauge(
            "bascule_applied_revision",
            "The last revision the engines applied (0: none yet)",
            report.applied_revision or 0,
        )
        yield _gauge("bascule_apply_ok", "1 when the last apply worked", int(report.apply_ok))
        yield from self._services()
        yield from self._servers()
        expiry = GaugeMetricFamily(
            "bascule_certificate_expiry_seconds",
            "Seconds until a certificate of the store expires (negative once expired)",
            labels=["name"],
        )
        for name, seconds in sorted(self.expiry.items()):
            expiry.add_metric([name], seconds)
        yield expiry
        yield from self._filter()

    def _filter(self) -> Iterator[Metric]:
        """The kernel filter's drops (engines/nftables/filter.py ``info``)."""
        info = self.report.engine.get("filter") or {}
        dropped = CounterMetricFamily(
            "bascule_access_list_dropped_packets",
            "Packets dropped because their source is in an access list (block or deny)",
            labels=["list"],
        )
        for name, values in sorted((info.get("lists") or {}).items()):
            dropped.add_metric([name], values.get("dropped_packets", 0))
        yield dropped
        denied = CounterMetricFamily(
            "bascule_virtual_service_denied_packets",
            "Packets dropped because their source is in none of the service's allowed lists",
            labels=["virtual_service"],
        )
        for name, values in sorted((info.get("services") or {}).items()):
            denied.add_metric([name], values.get("denied_packets", 0))
        yield denied
        caches = (self.report.engine.get("haproxy") or {}).get("caches") or {}
        lookups = CounterMetricFamily(
            "bascule_cache_lookups",
            "Requests an l7 service looked up in its cache",
            labels=["virtual_service"],
        )
        hits = CounterMetricFamily(
            "bascule_cache_hits",
            "Requests an l7 service answered from its cache",
            labels=["virtual_service"],
        )
        for name, values in sorted(caches.items()):
            lookups.add_metric([name], values.get("lookups", 0))
            hits.add_metric([name], values.get("hits", 0))
        yield lookups
        yield hits

    def _services(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "bascule_virtual_service_info",
            "A virtual service's address, ports and kind (always 1)",
            labels=[*_VS, "address", "ports", "protocol", "mode", "type", "scheduler"],
        )
        up = GaugeMetricFamily(
            "bascule_virtual_service_up",
            "1 when the service takes traffic (status up, degraded or unchecked)",
            labels=_VS,
        )
        status = GaugeMetricFamily(
            "bascule_virtual_service_status",
            "1 for the service's current status, 0 for the others",
            labels=[*_VS, "status"],
        )
        servers_up = GaugeMetricFamily(
            "bascule_virtual_service_real_servers_up", "Real servers up", labels=_VS
        )
        servers = GaugeMetricFamily(
            "bascule_virtual_service_real_servers", "Real servers configured", labels=_VS
        )
        traffic = _Traffic.of("bascule_virtual_service", "the service (its front end)", _VS)
        for vs in self.report.virtual_services:
            labels = [vs.name]
            info.add_metric(
                [vs.name, vs.address, vs.ports, vs.protocol, vs.mode, vs.type, vs.scheduler], 1
            )
            up.add_metric(labels, int(vs.status.serving))
            for name in ServiceStatus:
                status.add_metric([vs.name, name.value], int(vs.status is name))
            servers_up.add_metric(labels, vs.up)
            servers.add_metric(labels, vs.total)
            traffic.add(labels, vs)
        yield from (info, up, status, servers_up, servers, *traffic.families())

    def _servers(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "bascule_real_server_up", "1 when the real server's status is up", labels=_RS
        )
        status = GaugeMetricFamily(
            "bascule_real_server_status",
            "1 for the real server's current status, 0 for the others",
            labels=[*_RS, "status"],
        )
        weight = GaugeMetricFamily(
            "bascule_real_server_weight", "The configured weight (1..65535)", labels=_RS
        )
        check = GaugeMetricFamily(
            "bascule_real_server_check_duration_seconds",
            "How long the last health check took (absent before the first check)",
            labels=_RS,
        )
        traffic = _Traffic.of("bascule_real_server", "the real server", _RS)
        for vs in self.report.virtual_services:
            for rs in vs.real_servers:
                labels = [vs.name, rs.key]
                up.add_metric(labels, int(rs.status is ServerStatus.up))
                for name in ServerStatus:
                    status.add_metric([*labels, name.value], int(rs.status is name))
                weight.add_metric(labels, rs.weight)
                if rs.check_duration_ms is not None:
                    check.add_metric(labels, rs.check_duration_ms / 1000)
                traffic.add(labels, rs)
        yield from (up, status, weight, check, *traffic.families())


class _Counted(Protocol):
    """What a virtual service's and a real server's status both count."""

    @property
    def current_connections(self) -> int: ...
    @property
    def total_connections(self) -> int: ...
    @property
    def bytes_in(self) -> int: ...
    @property
    def bytes_out(self) -> int: ...
    @property
    def packets(self) -> int: ...
    @property
    def total_requests(self) -> int: ...


@dataclass(frozen=True)
class _Traffic:
    """The traffic families of services or of real servers, filled one object at a time."""

    connections: GaugeMetricFamily
    connections_total: CounterMetricFamily
    received: CounterMetricFamily
    sent: CounterMetricFamily
    packets: CounterMetricFamily
    requests: CounterMetricFamily

    @classmethod
    def of(cls, prefix: str, whose: str, labels: list[str]) -> _Traffic:
        def counter(name: str, documentation: str) -> CounterMetricFamily:
            return CounterMetricFamily(f"{prefix}_{name}", documentation, labels=labels)

        return cls(
            connections=GaugeMetricFamily(
                f"{prefix}_connections", f"Current connections of {whose}", labels=labels
            ),
            connections_total=counter("connections", f"Connections to {whose}"),
            received=counter("received_bytes", f"Bytes from the clients to {whose}"),
            sent=counter("sent_bytes", f"Bytes from {whose} to the clients"),
            packets=counter("packets", f"Packets of {whose} (L4 services only)"),
            requests=counter("requests", f"HTTP requests of {whose} (L7 HTTP only)"),
        )

    def add(self, labels: list[str], values: _Counted) -> None:
        self.connections.add_metric(labels, values.current_connections)
        self.connections_total.add_metric(labels, values.total_connections)
        self.received.add_metric(labels, values.bytes_in)
        self.sent.add_metric(labels, values.bytes_out)
        self.packets.add_metric(labels, values.packets)
        self.requests.add_metric(labels, values.total_requests)

    def families(self) -> tuple[Metric, ...]:
        return (
            self.connections,
            self.connections_total,
            self.received,
            self.sent,
            self.packets,
            self.requests,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def exposition(report: StatusReport, expiry: Mapping[str, float] | None = None) -> bytes:
    """The report (and the certificates' expiry) in the Prometheus text format 0.0.4."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(report, expiry))
    return generate_latest(registry)
