"""HAProxy's maxconn is sized from the descriptors each configuration holds (descriptors.py).

A real daemon runs under a descriptor limit of ``LIMIT`` (prlimit, soft and hard). A document
whose listeners, checks and peers leave room for just over MIN_MAXCONN connections starts,
and HAProxy's own count (``show info``: Maxsock, Maxconn) is the view's to the descriptor;
one more service of checked servers leaves too little room and is refused by the API with
the count in its message, before HAProxy is touched: the same worker serves on, the revision
is not committed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from daemon import BASCULE, BasculeDaemon
from netns import Topology

from bascule.engines.haproxy.descriptors import MIN_MAXCONN, Descriptors

pytestmark = pytest.mark.integration

LIMIT = 1500
SERVERS = 10
PREFIX = "198.19"  # nothing answers there: the checks fail, which costs them no descriptor


def api(daemon: BasculeDaemon) -> httpx.Client:
    transport = httpx.HTTPTransport(uds=str(daemon.data_dir / "bascule.sock"))
    return httpx.Client(transport=transport, base_url="http://bascule", timeout=120)


def document(vip: str, services: int) -> dict[str, Any]:
    """``services`` services of SERVERS checked servers; the first also has a port range of
    5 ports, a check port (one more descriptor per server) and a stick table (the peers
    listener)."""
    check = {"type": "tcp", "interval": 60, "timeout": 5}
    first = {
        "extra_ports": ["9000-9004"],
        "check": {**check, "port": 8080},
        "persistence": {"method": "source_ip"},
    }
    return {
        "virtual_services": [
            {
                "name": f"vs-{index}",
                "address": vip,
                "port": 10000 + index,
                "check": check,
                "real_servers": [
                    {"address": f"{PREFIX}.{index}.{n + 1}", "port": 80} for n in range(SERVERS)
                ],
                **(first if index == 0 else {}),
            }
            for index in range(services)
        ]
    }


def held(services: int) -> Descriptors:
    """What ``document(services)`` holds, counted by hand: a listener per service, 5 more
    ports, the peers listener; a check per server, a check port per server of the first."""
    return Descriptors(
        listeners=services + 5 + 1,
        checks=services * SERVERS + SERVERS,
        peers=1,
        nbthread=len(os.sched_getaffinity(0)),
    )


def largest_that_fits() -> int:
    services = 1
    while (LIMIT - held(services + 1).fixed) // 2 >= MIN_MAXCONN:
        services += 1
    return services


@pytest.fixture
def limited(topology: Topology, tmp_path: Path) -> BasculeDaemon:
    """``bascule run`` under RLIMIT_NOFILE LIMIT (soft and hard: the daemon cannot raise it)."""
    wrapper = tmp_path / "bascule-limited"
    prlimit = shutil.which("prlimit") or "/usr/bin/prlimit"
    wrapper.write_text(f'#!/bin/sh\nexec {prlimit} --nofile={LIMIT}:{LIMIT} {BASCULE} "$@"\n')
    wrapper.chmod(0o755)
    return BasculeDaemon(topology, command=str(wrapper))


def test_maxconn_fits_the_descriptors_and_a_bigger_document_is_refused(
    topology: Topology, limited: BasculeDaemon
) -> None:
    services = largest_that_fits()
    near = held(services)
    expected_maxconn = (LIMIT - near.fixed) // 2
    assert MIN_MAXCONN <= expected_maxconn < MIN_MAXCONN + 10  # near the limit indeed
    limited.start(timeout=30)
    try:
        with api(limited) as client:
            applied = client.put("/api/v1/config", json=document(topology.vip(), services))
            assert applied.status_code == 200, applied.text[-2000:]
            assert applied.json()["applied"], applied.json()["message"]
            info = limited.haproxy("show info")
            shown = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
            # HAProxy's own count is the view's, to the descriptor
            assert int(shown["Maxconn"]) == expected_maxconn
            assert int(shown["Maxsock"]) == near.maxsock(expected_maxconn) <= LIMIT
            # and the status says so
            # (read now: the recent reading may be from before the apply)
            fresh = client.get("/api/v1/status", params={"fresh": "true"}).json()
            engine = fresh["engine"]["haproxy"]
            assert engine["limits"]["maxconn"] == expected_maxconn
            assert engine["limits"]["maxsock"] == near.maxsock(expected_maxconn)
            revision = client.get("/api/v1/status").json()["revision"]
            pids = limited.worker_pids()

            refused = client.put("/api/v1/config", json=document(topology.vip(), services + 1))
            assert refused.status_code == 422, refused.text[-2000:]
            message = refused.text
            bigger = held(services + 1)
            assert f"{LIMIT} file descriptors" in message
            assert f"{bigger.listeners} listeners" in message
            assert f"{bigger.checks} health checks" in message
            assert "LimitNOFILE" in message
            # nothing touched: same worker, same revision, still applied
            assert limited.worker_pids() == pids
            status = client.get("/api/v1/status").json()
            assert status["revision"] == revision
            assert status["apply_ok"] is True
    finally:
        limited.stop()
