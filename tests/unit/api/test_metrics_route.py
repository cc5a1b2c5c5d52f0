"""/metrics: the status in Prometheus's text format."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.parser import text_string_to_metric_families

from bascule.api.exposition import exposition
from bascule.api.routes.metrics import CONTENT_TYPE
from bascule.daemon.service import ConfigService
from bascule.reconcile.status import ServerStatus, ServiceStatus


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_route_declares_prometheus_clients_content_type() -> None:
    # spelled in the route's module so that declaring it imports none of prometheus-client
    assert CONTENT_TYPE == CONTENT_TYPE_PLAIN_0_0_4


async def test_metrics_are_served_outside_the_api_prefix(
    client: httpx.AsyncClient, committed: int
) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
    found = samples(response.text)
    assert found[("bascule_revision", ())] == 1
    assert found[("bascule_apply_ok", ())] == 1
    web = (("virtual_service", "web"),)
    assert found[("bascule_virtual_service_real_servers", web)] == 2
    assert found[("bascule_virtual_service_status", (("status", "unchecked"), *web))] == 0
    rs = (("real_server", "198.18.0.4:80"), ("virtual_service", "web"))
    assert found[("bascule_real_server_weight", rs)] == 1000
    assert ("bascule_real_server_connections_total", rs) in found


async def test_counters_and_check_durations(service: ConfigService, committed: int) -> None:
    report = await service.status()
    [vs] = report.virtual_services
    server = replace(
        vs.real_servers[0],
        status=ServerStatus.up,
        check_duration_ms=12,
        total_requests=40,
        total_connections=20,
        bytes_out=1234,
    )
    vs = replace(
        vs, status=ServiceStatus.up, total_requests=41, real_servers=(server, *vs.real_servers[1:])
    )
    found = samples(exposition(replace(report, virtual_services=(vs,))).decode())
    web = (("virtual_service", "web"),)
    rs = (("real_server", "198.18.0.4:80"), ("virtual_service", "web"))
    assert found[("bascule_virtual_service_up", web)] == 1
    assert found[("bascule_virtual_service_status", (("status", "up"), *web))] == 1
    assert found[("bascule_virtual_service_requests_total", web)] == 41
    assert found[("bascule_real_server_up", rs)] == 1
    assert found[("bascule_real_server_check_duration_seconds", rs)] == 0.012
    assert found[("bascule_real_server_requests_total", rs)] == 40
    assert found[("bascule_real_server_connections_total", rs)] == 20
    assert found[("bascule_real_server_sent_bytes_total", rs)] == 1234
    other = (("real_server", "198.18.0.5:80"), ("virtual_service", "web"))
    assert ("bascule_real_server_check_duration_seconds", other) not in found


async def test_an_empty_store_has_the_global_metrics(client: httpx.AsyncClient) -> None:
    found = samples((await client.get("/metrics")).text)
    assert found[("bascule_revision", ())] == 0
    assert not any(name.startswith("bascule_real_server") for name, _ in found)


async def test_metrics_need_read(client_as: Any, committed: int) -> None:
    assert (await (await client_as(None)).get("/metrics")).status_code == 401
    assert (await (await client_as("viewer")).get("/metrics")).status_code == 200
