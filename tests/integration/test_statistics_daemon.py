"""Statistics end to end: a real daemon samples HAProxy's counters into rates and /metrics.

Requests go from the client namespace through HAProxy to real servers; the sampler (every
second here, ``BASCULE_STATS_INTERVAL=1``) turns HAProxy's totals (``req_tot``, the servers'
``hrsp_*``, ``stot``, bytes) into per-second rates, read back over the unix socket.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from daemon import BasculeDaemon
from netns import Topology
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

REQUESTS = 200


def api(daemon: BasculeDaemon) -> httpx.Client:
    transport = httpx.HTTPTransport(uds=str(daemon.data_dir / "bascule.sock"))
    return httpx.Client(transport=transport, base_url="http://bascule", timeout=10)


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise KeyError(f"{name} {labels}")


def test_request_rates_and_metrics_from_a_real_haproxy(topology: Topology) -> None:
    topology.start_real_servers()
    daemon = BasculeDaemon(topology, env={"BASCULE_STATS_INTERVAL": "1"}).start()
    try:
        service: dict[str, Any] = {
            "name": "web",
            "address": topology.vip(),
            "port": 80,
            "type": "http",
            "check": {"type": "http", "path": "/health", "interval": 1, "rise": 1},
            "real_servers": [{"address": rs.address, "port": 80} for rs in topology.real_servers],
        }
        daemon.apply({"virtual_services": [service]})
        topology.wait_tcp("client", topology.vip(), 80)
        # Spread over three seconds, so that samples are taken while the requests come.
        result = topology.run_client(
            "--url",
            f"http://{topology.vip()}/",
            "--requests",
            str(REQUESTS),
            "--rate",
            str(REQUESTS / 3),
            "--keepalive",
        )
        assert result["failures"] == 0, result["errors"]
        with api(daemon) as client:
            text = client.get("/metrics").text
            assert (
                metric(text, "bascule_virtual_service_requests_total", virtual_service="web")
                >= REQUESTS
            )
            served = sum(
                metric(
                    text,
                    "bascule_real_server_requests_total",
                    virtual_service="web",
                    real_server=f"{rs.address}:80",
                )
                for rs in topology.real_servers
            )
            assert served >= REQUESTS
            # The sampler reads every second: the rates of the buckets the traffic fell in.
            deadline = time.monotonic() + 15
            while True:
                body = client.get("/api/v1/statistics/virtual-services/web").json()
                rates = [v for v in body["values"].get("requests_per_s", []) if v]
                if rates or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert rates, {k: v[-10:] for k, v in body["values"].items()}
            assert all(rate > 0 for rate in rates)
            checks = body["real_servers"][f"{topology.real_servers[0].address}:80"]
            assert any(v is not None for v in checks["check_duration_ms"])
            summary = client.get("/api/v1/statistics/virtual-services").json()
            assert summary["items"][0]["main"] == "requests_per_s"
    finally:
        daemon.terminate()
