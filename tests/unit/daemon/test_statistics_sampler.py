"""daemon/statistics.py: the sampler reads the status and keeps the windows per service."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from change_requests import by

from bascule.daemon.results import RealServerStatus, StatusReport, VirtualServiceStatus
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics, reading
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.errors import StoreError
from bascule.model import RealServerState
from bascule.reconcile.status import ServerStatus, ServiceStatus
from bascule.store.revisions import RevisionStore


def server(key: str, *, total: int, requests: int, check: int | None) -> RealServerStatus:
    address, port = key.rsplit(":", 1)
    return RealServerStatus(
        key=key,
        address=address,
        port=int(port),
        weight=1000,
        engine_weight=256,
        state=RealServerState.enabled,
        status=ServerStatus.up,
        check_result="L7OK",
        check_code=200,
        check_duration_ms=check,
        check_detail=None,
        critical=False,
        current_connections=1,
        total_connections=total,
        bytes_in=total * 10,
        bytes_out=total * 100,
        total_requests=requests,
    )


def service(
    name: str, *, mode: str = "l7", kind: str = "http", total: int = 0, packets: int = 0
) -> VirtualServiceStatus:
    servers = (
        server("198.18.0.4:80", total=total, requests=total * 2, check=3),
        server("198.18.0.5:80", total=total, requests=total * 2, check=5),
    )
    return VirtualServiceStatus(
        name=name,
        address="198.18.0.100",
        ports="80",
        protocol="tcp",
        type=kind,
        mode=mode,
        scheduler="round_robin",
        status=ServiceStatus.up,
        message="",
        up=2,
        total=2,
        current_connections=2,
        total_connections=total * 2,
        bytes_in=total * 20,
        bytes_out=total * 200,
        total_requests=total * 4,
        packets=packets,
        real_servers=servers,
    )


def report(*services: VirtualServiceStatus) -> StatusReport:
    return StatusReport(
        revision=1, applied_revision=1, apply_ok=True, apply_message="", virtual_services=services
    )


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def test_reading_keeps_requests_for_l7_http_and_packets_for_l4() -> None:
    web = reading(service("web", total=5))
    assert web.own.total_requests == 20
    assert web.own.packets is None
    assert web.own.check_duration_ms == 4.0  # the mean of the servers' last checks
    assert web.real_servers["198.18.0.5:80"].total_requests == 10
    tcp = reading(service("db", kind="generic", total=5))
    assert tcp.own.total_requests is None
    dns = reading(service("dns", mode="l4", kind="generic", total=5, packets=7))
    assert dns.own.packets == 7
    assert dns.real_servers["198.18.0.4:80"].packets == 0


async def test_samples_become_series_and_sparklines() -> None:
    clock = Clock()
    totals = iter(range(0, 1000, 10))

    async def source() -> StatusReport:
        return report(service("web", total=next(totals)), service("db", kind="generic"))

    stats = Statistics(source, interval=10, clock=clock)
    for _ in range(3):
        await stats.sample()
        clock.now += 10
    clock.now -= 10
    assert stats.samples == 3
    assert stats.names() == ["db", "web"]
    series = stats.series("web", "hour")
    assert series.main == "requests_per_s" == stats.main("web")
    assert series.values["requests_per_s"][-2:] == (4.0, 4.0)
    assert series.real_servers["198.18.0.4:80"]["new_connections_per_s"][-1] == 1.0
    assert stats.sparkline("web") == [4.0, 4.0]
    assert stats.main("db") == "new_connections_per_s"
    assert stats.latest("web")["connections"] == 2.0
    assert stats.series("web", "day").step == 300


async def test_a_cache_gives_its_hits_and_hit_ratio_series() -> None:
    clock = Clock()
    counts = iter([(0, 0), (100, 80), (300, 130)])  # (lookups, hits) of web's cache

    async def source() -> StatusReport:
        lookups, hits = next(counts)
        caches = {"web": {"lookups": lookups, "hits": hits, "hit_ratio": 0.5}}
        return StatusReport(
            revision=1,
            applied_revision=1,
            apply_ok=True,
            apply_message="",
            engine={"haproxy": {"caches": caches}},
            virtual_services=(service("web"), service("api")),
        )

    stats = Statistics(source, interval=10, clock=clock)
    for _ in range(3):
        await stats.sample()
        clock.now += 10
    clock.now -= 10
    web = stats.series("web", "hour").values
    assert web["cache_hits_per_s"][-2:] == (8.0, 5.0)
    assert web["cache_hit_ratio"][-2:] == pytest.approx((0.8, 0.25))  # per interval
    api = stats.series("api", "hour").values  # no cache: the series are there, empty
    assert set(api["cache_hit_ratio"]) == {None}
    servers = stats.series("web", "hour").real_servers["198.18.0.4:80"]
    assert "cache_hit_ratio" not in servers  # a real server has no cache of its own


async def test_run_samples_on_its_interval_and_survives_a_failed_read() -> None:
    calls = 0

    async def source() -> StatusReport:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StoreError("database is locked")
        return report(service("web"))

    stats = Statistics(source, interval=0.01)
    task = asyncio.create_task(stats.run())
    try:
        async with asyncio.timeout(5):
            while stats.samples < 3:  # noqa: ASYNC110  (polling the sampler is the test)
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert calls >= 4


async def test_samples_the_service_layer_status(tmp_path: Path) -> None:
    engine = FakeEngine()
    with RevisionStore(tmp_path / "bascule.db") as store:
        config = ConfigService(store=store, engines=[engine], vips=NullVipManager())
        document = {
            "virtual_services": [
                {
                    "name": "web",
                    "address": "198.18.0.100",
                    "port": 80,
                    "real_servers": [{"address": "198.18.0.4", "port": 80}],
                }
            ]
        }
        await config.apply(document, by("test"))
        stats = Statistics(config.status, interval=1)
        await stats.sample()
        assert stats.names() == ["web"]
        assert list(stats.series("web", "hour").real_servers) == ["198.18.0.4:80"]


def test_the_interval_must_be_positive() -> None:
    async def source() -> StatusReport:
        return report()

    with pytest.raises(ValueError, match="positive"):
        Statistics(source, interval=0)


async def test_after_sample_runs_after_each_recorded_sample() -> None:
    clock = Clock()
    seen: list[int] = []

    async def source() -> StatusReport:
        return report(service("web", total=10))

    stats = Statistics(source, interval=10, clock=clock, after_sample=lambda: seen.append(1))
    await stats.sample()
    await stats.sample()
    assert stats.samples == 2 and len(seen) == 2
