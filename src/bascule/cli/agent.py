"""``bascule agent``: the real-server side of the adaptive scheduler (LoadMaster-compatible).

A Linux real server runs it (no daemon needed; see docs/bascule-agent.service for systemd).
It answers ``GET <url>`` on ``<bind>:<port>`` with its load as the first line: an integer
0 (idle) .. 100 (overloaded), the larger of its CPU use (from /proc/stat, over the last
second) and its memory use (1 - MemAvailable / MemTotal, from /proc/meminfo). With
``--load-file F`` the first line of F, when it exists, is served instead (an integer 0..102:
101 reports the server down, 102 administratively disabled), for maintenance and tests.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

SAMPLE_SECONDS = 1.0


def cpu_times(stat: str) -> tuple[int, int]:
    """(busy, total) jiffies from the ``cpu`` line of /proc/stat."""
    for line in stat.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            total = sum(values[:8])  # guest time is already counted in user and nice
            return total - idle, total
    raise ValueError("no cpu line in /proc/stat")


def memory_percent(meminfo: str) -> int:
    fields = {}
    for line in meminfo.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            fields[name] = int(parts[0])
    total = fields.get("MemTotal", 0)
    if total <= 0:
        return 0
    return round(100 * (1 - fields.get("MemAvailable", total) / total))


def combined_load(cpu_percent: float, mem_percent: float) -> int:
    """The agent's figure: the scarcer of CPU and memory, 0..100."""
    return max(0, min(100, round(max(cpu_percent, mem_percent))))


def override_load(load_file: Path | None) -> str | None:
    """The first line of ``load_file`` when it holds an integer 0..102, else None."""
    if load_file is None:
        return None
    try:
        first = load_file.read_text().strip().splitlines()[:1]
    except OSError:
        return None
    if first and first[0].strip().isdigit() and 0 <= int(first[0].strip()) <= 102:
        return str(int(first[0].strip()))
    return None


class LoadSampler:
    """CPU use over the last sample period, from a background thread."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self.proc = proc
        self.cpu_percent = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def load(self) -> int:
        try:
            mem = memory_percent((self.proc / "meminfo").read_text())
        except (OSError, ValueError):
            mem = 0
        return combined_load(self.cpu_percent, mem)

    def _run(self) -> None:
        previous = self._sample()
        while not self._stop.wait(SAMPLE_SECONDS):
            current = self._sample()
            if previous is not None and current is not None and current[1] > previous[1]:
                busy = current[0] - previous[0]
                self.cpu_percent = 100 * busy / (current[1] - previous[1])
            previous = current

    def _sample(self) -> tuple[int, int] | None:
        try:
            return cpu_times((self.proc / "stat").read_text())
        except (OSError, ValueError):
            return None


def make_handler(url: str, sampler: LoadSampler, load_file: Path | None) -> type:
    from http.server import BaseHTTPRequestHandler  # only the agent serves HTTP

    class AgentHandler(BaseHTTPRequestHandler):
        server_version = "bascule-agent"

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != url:
                self._answer(404, "not found\n")
                return
            value = override_load(load_file)
            self._answer(200, f"{value if value is not None else sampler.load()}\n")

        def _answer(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return  # one line per poll would flood the journal

    return AgentHandler


def agent(
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8080,
    url: Annotated[str, typer.Option("--url", help="Path that answers the load.")] = "/load",
    bind: Annotated[str, typer.Option("--bind", help="Address to listen on.")] = "0.0.0.0",
    load_file: Annotated[
        Path | None,
        typer.Option(
            "--load-file",
            help="Serve this file's first line (0..102) instead of the measured load "
            "while it exists (maintenance: 102 takes the server out).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve this server's load to Bascule's adaptive scheduler (no daemon needed)."""
    from http.server import ThreadingHTTPServer

    if not url.startswith("/"):
        raise typer.BadParameter("must start with /", param_hint="--url")
    sampler = LoadSampler()
    sampler.start()
    server = ThreadingHTTPServer((bind, port), make_handler(url, sampler, load_file))
    server.daemon_threads = True
    typer.echo(f"bascule agent: serving the load on http://{bind}:{port}{url}", err=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sampler.stop()
