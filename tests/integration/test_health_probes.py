"""Bascule's own health probes and checker against real servers in network namespaces.

The probes run inside the load balancer's namespace, where the daemon will run them: this
file is also a small program (see ``main`` at the bottom) that the tests start there with
``ip netns exec`` to run a batch of probes, a HealthChecker, or a tiny UDP DNS responder.

Real servers (tests/tools/realserver.py unless said otherwise):

    rs1 198.18.0.11  http :80, http :8080 (/health driven by a control file), https :443,
                     binary :9000 (hello -> world), binary :9001 (waits for 4 bytes forever),
                     smtp banner :25, DNS responder udp :53
    rs2 198.18.0.12  http :80 whose /health answers 503; nothing on udp :53
    rs3 198.18.0.13  http :80; a "DNS server" on udp :53 that echoes the query back
    198.18.0.60-64   nobody: a black hole (a permanent neighbour entry to an absent MAC)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
from netns import Topology, require_root, wait_ready

pytestmark = pytest.mark.integration

RS1, RS2, RS3 = "198.18.0.11", "198.18.0.12", "198.18.0.13"
BLACK_HOLES = [f"198.18.0.{n}" for n in range(60, 65)]
NOBODY = BLACK_HOLES[0]
SLACK_MS = 1000  # CPU contention on a shared machine; a timeout must not run on for longer


@dataclass
class Lab:
    topology: Topology
    control: Path  # rs1:8080 reads it on every /health request


def _self_signed(workdir: Path) -> tuple[Path, Path]:
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-subj", "/CN=www.example.com",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def lab(_stale_namespaces_removed: None) -> Iterator[Lab]:
    require_root()
    with Topology(real_servers=3) as topo:
        assert topo.workdir is not None
        control = topo.workdir / "health-control"
        cert, key = _self_signed(topo.workdir)
        topo.start_real_server("rs1")
        topo.start_real_server("rs1", "--control", str(control), port=8080)
        topo.start_real_server("rs1", "--tls-cert", str(cert), "--tls-key", str(key), port=443)
        binary = ["--mode", "binary", "--expect-hex", "68656c6c6f"]
        topo.start_real_server("rs1", *binary, "--reply-hex", "776f726c640a", port=9000)
        topo.start_real_server("rs1", "--mode", "binary", "--expect-hex", "aabbccdd", port=9001)
        topo.start_real_server("rs1", "--mode", "banner", port=25)
        topo.start_real_server("rs2", "--health-status", "503")
        topo.start_real_server("rs3")
        for host, address, mode in (("rs1", RS1, "good"), ("rs3", RS3, "echo")):
            dns = topo.popen(
                host,
                [sys.executable, __file__, "dns-server", address, "53", mode],
                stdout=subprocess.PIPE,
                text=True,
            )
            wait_ready(dns)
        # Let the ICMP datagram socket be tried too (root is gid 0); this namespace only.
        topo.run("lb", ["sysctl", "-qw", "net.ipv4.ping_group_range=0 0"])
        # A black hole: frames to a MAC nobody has. Without the permanent entry, ARP for a
        # missing host fails and the next probes fail at once ("no route to host") instead
        # of timing out, depending on the neighbour cache.
        for address in BLACK_HOLES:
            neighbour = ["neigh", "replace", address, "lladdr", "02:00:5e:00:00:01"]
            topo.run("lb", ["ip", *neighbour, "dev", "eth0", "nud", "permanent"])
        yield Lab(topo, control)


def run_in_lb(lab: Lab, command: str, job: dict[str, Any], timeout: float = 30) -> Any:
    proc = lab.topology.run(
        "lb", [sys.executable, __file__, command], input=json.dumps(job), timeout=timeout
    )
    return json.loads(proc.stdout)


def probe_all(lab: Lab, **probes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Run every named probe at once in the lb namespace; their CheckResults as dicts."""
    results: dict[str, dict[str, Any]] = run_in_lb(lab, "probe", probes)
    return results


def spec(address: str, port: int, host: str | None = None, **check: Any) -> dict[str, Any]:
    return {"address": address, "port": port, "host": host or address, "check": check}


def assert_ok(result: dict[str, Any], code: int | None = None) -> None:
    assert result["ok"], result
    assert result["code"] == code, result
    assert 0 < result["duration_ms"] < 1000 + SLACK_MS, result


def assert_fails(result: dict[str, Any], detail: str, code: int | None = None) -> None:
    assert not result["ok"], result
    assert detail in result["detail"], result
    assert result["code"] == code, result
    assert 0 < result["duration_ms"] < 1000 + SLACK_MS, result


def assert_timed_out(result: dict[str, Any], timeout: int = 1) -> None:
    assert not result["ok"], result
    assert result["detail"] == f"no answer within {timeout}s", result
    assert timeout * 1000 - 50 <= result["duration_ms"] <= timeout * 1000 + SLACK_MS, result


def test_tcp(lab: Lab) -> None:
    results = probe_all(
        lab,
        good=spec(RS1, 80, type="tcp"),
        refused=spec(RS1, 81, type="tcp"),
        black_hole=spec(NOBODY, 80, type="tcp"),
    )
    assert_ok(results["good"])
    assert results["good"]["detail"] == "connected"
    assert_fails(results["refused"], "connection refused")
    assert_timed_out(results["black_hole"])


def test_http(lab: Lab) -> None:
    echo_matches = (
        r'(?s)(?=.*"method": "POST")(?=.*"host": "www\.example\.com")'
        r'(?=.*"x-check": "yes")(?=.*"body_length": 5)(?=.*"path": "/echo\?q=1")'
    )
    results = probe_all(
        lab,
        good=spec(RS1, 80, type="http", path="/health", expect_body="^up rs1"),
        wrong_status=spec(RS2, 80, type="http", path="/health"),
        body_mismatch=spec(RS1, 80, type="http", expect_body="rs2"),
        redirect=spec(RS1, 80, type="http", path="/status/302"),
        not_found=spec(RS1, 80, type="http", path="/status/404", expect_status="200-299,301"),
        wanted_404=spec(RS1, 80, type="http", path="/status/404", expect_status="404"),
        head=spec(RS1, 80, type="http", method="HEAD"),
        request=spec(
            RS1,
            80,
            "www.example.com",
            type="http",
            method="POST",
            path="/echo?q=1",
            headers={"X-Check": "yes"},
            post_data="hello",
            expect_body=echo_matches,
        ),
        refused=spec(RS2, 81, type="http"),
        hangs=spec(RS1, 80, type="http", path="/slow?ms=5000"),
    )
    assert_ok(results["good"], 200)
    assert_fails(results["wrong_status"], "status 503, expected 200-299,301,302,401", 503)
    assert_fails(results["body_mismatch"], "body does not match", 200)
    assert_ok(results["redirect"], 302)
    assert_fails(results["not_found"], "status 404", 404)
    assert_ok(results["wanted_404"], 404)
    assert_ok(results["head"], 200)
    assert_ok(results["request"], 200)
    assert_fails(results["refused"], "connection refused")
    assert_timed_out(results["hangs"])


def test_https(lab: Lab) -> None:
    results = probe_all(
        lab,
        # self-signed: never verified
        good=spec(RS1, 443, "www.example.com", type="https", path="/health", expect_body="^up"),
        by_address=spec(RS1, 443, type="https"),
        not_tls=spec(RS1, 25, type="https"),  # an SMTP banner instead of a ServerHello
        wrong_status=spec(RS1, 443, type="https", path="/status/500"),
    )
    assert_ok(results["good"], 200)
    assert_ok(results["by_address"], 200)
    assert_fails(results["not_tls"], "TLS error")
    assert_fails(results["wrong_status"], "status 500", 500)


def test_binary_and_banners(lab: Lab) -> None:
    results = probe_all(
        lab,
        good=spec(RS1, 9000, type="binary", send_hex="68656c6c6f", expect_hex="776f72"),
        wrong=spec(RS1, 9000, type="binary", send_hex="68656c6c6f", expect_hex="776f726d"),
        closed=spec(RS1, 9000, type="binary", send_hex="6a756e6b21", expect_hex="776f72"),
        send_only=spec(RS1, 9000, type="binary", send_hex="68656c6c6f"),
        silent=spec(RS1, 9001, type="binary", send_hex="aa", expect_hex="00"),
        smtp=spec(RS1, 25, type="smtp"),
        pop3_on_smtp=spec(RS1, 25, type="pop3"),
    )
    assert_ok(results["good"])
    assert_fails(results["wrong"], "expected 776f726d, got 776f726c640a")
    assert_fails(results["closed"], "expected 776f72, got nothing")
    assert_ok(results["send_only"])
    assert_timed_out(results["silent"])
    assert_ok(results["smtp"], 250)  # the real server's answer to EHLO
    assert results["smtp"]["detail"] == "220 smtp.example ESMTP"
    assert_fails(results["pop3_on_smtp"], "unexpected banner '220 smtp.example ESMTP'")


def test_dns(lab: Lab) -> None:
    results = probe_all(
        lab,
        root_ns=spec(RS1, 53, type="dns"),
        a_record=spec(RS1, 53, type="dns", host="www.example.com"),
        nothing_listening=spec(RS2, 53, type="dns"),
        not_a_response=spec(RS3, 53, type="dns"),
        black_hole=spec(NOBODY, 53, type="dns"),
    )
    assert_ok(results["root_ns"], 0)
    assert_ok(results["a_record"], 0)
    assert_fails(results["nothing_listening"], "connection refused")
    assert_fails(results["not_a_response"], "bad DNS response: the QR bit is not set")
    assert_timed_out(results["black_hole"])


def test_icmp_by_each_method(lab: Lab) -> None:
    methods = ("raw", "datagram", "ping")
    probes: dict[str, dict[str, Any]] = {}
    for method in methods:
        probes[f"alive {method}"] = spec(RS2, 0, type="icmp", icmp=method)
        probes[f"alive, port closed {method}"] = spec(RS3, 9, type="icmp", icmp=method)
        probes[f"nobody {method}"] = spec(NOBODY, 0, type="icmp", icmp=method)
    probes["default order"] = spec(RS1, 0, type="icmp")
    results = probe_all(lab, **probes)
    for method in methods:
        assert_ok(results[f"alive {method}"])
        assert_ok(results[f"alive, port closed {method}"])
    assert results["alive raw"]["detail"] == results["alive datagram"]["detail"] == "echo reply"
    assert results["alive ping"]["detail"] == "echo reply (ping)"
    assert_timed_out(results["nobody raw"])
    assert_timed_out(results["nobody datagram"])
    # ping's own -W 1 gives up first, or the probe's timeout does
    assert not results["nobody ping"]["ok"]
    assert results["nobody ping"]["duration_ms"] <= 1000 + SLACK_MS
    assert_ok(results["default order"])  # root: the raw socket
    assert results["default order"]["detail"] == "echo reply"


def test_ten_targets_half_black_holed_are_all_checked_within_an_interval(lab: Lab) -> None:
    good = [(RS1, 80), (RS2, 80), (RS3, 80), (RS1, 9000), (RS1, 25)]
    black_holed = [(address, 80) for address in BLACK_HOLES]
    check: dict[str, Any] = {"type": "tcp", "interval": 1, "timeout": 1, "rise": 1, "fall": 1}
    targets = [spec(address, port, **check) for address, port in good + black_holed]
    outcome = run_in_lb(lab, "checker", {"targets": targets, "run_for": 3.5})
    statuses = outcome["statuses"]
    assert len(statuses) == 10
    # Each black-holed check takes its whole timeout (1 s, as long as the interval): checked
    # one after the other, the five of them alone would need 5 s, and the good ones would
    # wait behind them. Concurrently, within 3.5 s every target is checked at least twice.
    for address, port in good:
        status = statuses[f"{address}:{port}"]
        assert status["up"] and status["checks"] >= 2, status
        assert status["last"]["ok"], status
    for address, port in black_holed:
        status = statuses[f"{address}:{port}"]
        assert not status["up"] and status["checks"] >= 2, status
        assert_timed_out(status["last"])
    # on_change exactly on flips: the good ones came up once; the others started down
    flips = sorted((event["server"], event["up"]) for event in outcome["events"])
    assert flips == sorted((f"{address}:{port}", True) for address, port in good)


def test_a_failing_server_goes_down_within_fall_intervals_and_comes_back_after_rise(
    lab: Lab,
) -> None:
    lab.control.write_text("up")
    target = spec(RS1, 8080, type="http", path="/health", interval=1, timeout=1, rise=2, fall=2)
    job = {"targets": [target], "run_for": 12, "flip_control": str(lab.control), "flips": 3}
    outcome = run_in_lb(lab, "checker", job)
    events = outcome["events"]
    assert [event["up"] for event in events] == [True, False, True], outcome
    writes = outcome["writes"]  # "down" 0.2 s after the first up, "up" 0.2 s after the down
    assert [word for word, _ in writes] == ["down", "up"]
    # the bound: removal within interval x fall + 1 s, return within interval x rise
    # + 1 s (the check that sees the change may start just before it)
    assert events[1]["at"] - writes[0][1] <= 1 * 2 + 1
    assert events[2]["at"] - writes[1][1] <= 1 * 2 + 1
    down = events[1]
    assert down["code"] == 503 and down["detail"] == "status 503, expected 200-299,301,302,401"


# -- the program run inside the namespaces --------------------------------------------------


def _target_parts(item: dict[str, Any]) -> tuple[Any, Any, str | None]:
    """(HealthCheck, Endpoint, forced ICMP method) of one probe spec."""
    from bascule.health.probes import Endpoint
    from bascule.model.check import HealthCheck

    fields = dict(item["check"])
    icmp = fields.pop("icmp", None)
    endpoint = Endpoint(address=item["address"], port=item["port"], host=item["host"])
    return HealthCheck.model_validate(fields), endpoint, icmp


async def _probe_job(job: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from bascule.health.probes import IcmpMethod, probe_icmp, run_probe

    async def one(item: dict[str, Any]) -> dict[str, Any]:
        check, endpoint, icmp = _target_parts(item)
        forced = None
        if icmp is not None:
            forced = functools.partial(probe_icmp, methods=(IcmpMethod(icmp),))
        return asdict(await run_probe(check, endpoint, probe=forced))

    results = await asyncio.gather(*(one(item) for item in job.values()))
    return dict(zip(job, results, strict=True))


async def _checker_job(job: dict[str, Any]) -> dict[str, Any]:
    from bascule.health.checker import HealthChecker, Target, TargetRef

    started = time.monotonic()
    events: list[dict[str, Any]] = []
    writes: list[tuple[str, float]] = []
    done = asyncio.Event()
    pending: set[asyncio.Task[None]] = set()

    async def write_later(word: str) -> None:
        await asyncio.sleep(0.2)
        Path(job["flip_control"]).write_text(word)  # noqa: ASYNC240 (a few bytes, once)
        writes.append((word, time.monotonic() - started))

    async def on_change(ref: Any, up: bool, result: Any) -> None:
        at = time.monotonic() - started
        events.append({"server": ref.server, "up": up, "at": at, **asdict(result)})
        if job.get("flip_control"):
            task = asyncio.create_task(write_later("down" if up else "up"))
            pending.add(task)
        if len(events) == job.get("flips"):
            done.set()

    targets = []
    for item in job["targets"]:
        check, endpoint, _ = _target_parts(item)
        ref = TargetRef(vs="test", server=f"{item['address']}:{item['port']}")
        targets.append(Target(ref=ref, check=check, endpoint=endpoint))
    checker = HealthChecker(on_change)
    await checker.update(targets)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), job["run_for"])
    statuses = {
        ref.server: {"up": status.up, "checks": status.checks, "last": asdict(status.last)}
        for ref, status in checker.statuses().items()
        if status.last is not None
    }
    await checker.stop()
    for task in pending:
        task.cancel()
    return {"events": events, "statuses": statuses, "writes": writes}


def _serve_dns(address: str, port: int, mode: str) -> None:
    """Answer every query: "good" with the question and NOERROR, "echo" with the query."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((address, port))
        print("ready", flush=True)
        while True:
            query, peer = sock.recvfrom(4096)
            if mode == "echo" or len(query) < 12:
                sock.sendto(query, peer)
                continue
            ident, flags = struct.unpack("!HH", query[:4])
            header = struct.pack("!HHHHHH", ident, 0x8080 | (flags & 0x0100), 1, 0, 0, 0)
            sock.sendto(header + query[12:], peer)


def main(argv: list[str]) -> int:
    if argv[0] == "dns-server":
        _serve_dns(argv[1], int(argv[2]), argv[3])
        return 0
    job = json.load(sys.stdin)
    runner = _probe_job if argv[0] == "probe" else _checker_job
    print(json.dumps(asyncio.run(runner(job))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
