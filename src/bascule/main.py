"""The composition root and console script ``bascule``.

It takes the CLI (an API client, bascule.cli) and adds the daemon's own commands:
``bascule run``, the only command that is not an API client (it *is* the daemon, wired here to
the API it serves), and ``bascule demo``, which starts demo back ends and a daemon in the
background, then applies the demo configuration through the API like any other client.
This module sits above every layer in docs/architecture.md: it is the one place allowed to
connect the daemon and the API.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bascule.cli.client import CliError
from bascule.cli.main import app
from bascule.cli.session import Session
from bascule.demo import DEMO_BACKENDS, DEMO_VIP, demo_document
from bascule.errors import BasculeError

if TYPE_CHECKING:
    from bascule.daemon import runner
    from bascule.daemon.service import ConfigService

# The daemon and the API (FastAPI, uvicorn, the engines) are imported only by `bascule run`:
# importing them costs more than half a second, which every client command would pay.


def _make_app(service: ConfigService, system: runner.SystemInfo) -> Any:
    from bascule.api.app import create_app
    from bascule.api.deps import ApiServices

    return create_app(ApiServices(config=service, system=system))


def run(
    ctx: typer.Context,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info, warning or error [default: BASCULE_LOG_LEVEL or info]"),
    ] = None,
) -> None:
    """Run the appliance in the foreground: engines, VIPs and the API on the unix socket."""
    from bascule.daemon import logs, runner
    from bascule.settings import Settings

    session = Session.of(ctx)
    if os.geteuid() != 0:
        raise CliError("bascule run needs root: it manages HAProxy, addresses and nftables")
    settings = Settings(data_dir=session.data_dir)
    if log_level is not None:
        settings = settings.model_copy(update={"log_level": log_level})
    logs.configure(settings.log_level)
    try:
        runner.run(settings, make_app=_make_app)
    except BasculeError as exc:
        raise CliError(str(exc)) from exc


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
        return None
    return pid


def _stop_pid(pid: int, timeout: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def demo(
    ctx: typer.Context,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the demo and the daemon.")] = False,
    port: Annotated[int, typer.Option(help="Port of the demo virtual service.")] = DEMO_VIP[1],
) -> None:
    """Start the daemon in the background with three demo back ends behind one VIP."""
    session = Session.of(ctx)
    demo_dir = session.data_dir / "demo"
    if stop:
        for pid_file in [*sorted(demo_dir.glob("*.pid")), session.data_dir / "bascule.pid"]:
            pid = _pid(pid_file)
            if pid is not None:
                _stop_pid(pid)
            pid_file.unlink(missing_ok=True)
        typer.echo("demo stopped")
        return
    session.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    demo_dir.mkdir(exist_ok=True)
    for index, (address, backend_port) in enumerate(DEMO_BACKENDS, start=1):
        pid_file = demo_dir / f"backend-{index}.pid"
        if _pid(pid_file) is not None:
            continue
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bascule.demo",
                "backend",
                "--address",
                address,
                "--port",
                str(backend_port),
                "--name",
                f"backend-{index}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(demo_dir / f"backend-{index}.log").open("a"),
            start_new_session=True,
        )
        pid_file.write_text(f"{process.pid}\n")
    log_path = session.data_dir / "bascule.log"
    if _pid(session.data_dir / "bascule.pid") is None:
        subprocess.Popen(
            [sys.executable, "-m", "bascule.main", "--data-dir", str(session.data_dir), "run"],
            stdout=log_path.open("a"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    client = session.client()
    deadline = time.monotonic() + 20
    while not session.socket.exists():
        if time.monotonic() > deadline:
            raise CliError(f"the daemon did not start; see {log_path}")
        time.sleep(0.1)
    with client:
        result = client.put_config(demo_document(port), message="demo", dry_run=False)
        if not result.get("applied", False):
            raise CliError(f"the demo could not be applied: {result.get('message')}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            services = client.status()["virtual_services"]
            if services and services[0]["status"] == "up":
                break
            time.sleep(0.25)
    url = f"http://{DEMO_VIP[0]}:{port}/"
    typer.echo(
        f"\nBascule is running (data dir {session.data_dir}, log {log_path}).\n"
        f"The demo virtual service balances {len(DEMO_BACKENDS)} back ends. Try:\n\n"
        f"    curl {url}\n"
        f"    bascule status\n"
        f"    bascule rs drain demo 127.0.0.1:9001\n"
        f"    bascule history\n\n"
        f"Stop it with: bascule demo --stop\n"
    )


app.command("run")(run)
app.command("demo")(demo)


def main() -> None:
    """The console script ``bascule``."""
    app()


if __name__ == "__main__":
    main()
