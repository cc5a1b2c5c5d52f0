"""The composition root and console script ``bascule``.

It takes the CLI (an API client, bascule.cli) and adds the daemon's own commands:
``bascule run``, the only command that is not an API client (it becomes the daemon: once its
options are parsed it replaces its process with ``bascule.serve``, the daemon's composition
root, which wires the daemon to the API it serves without the CLI in memory), and ``bascule
demo``, which starts demo back ends and a daemon in the background, then applies the demo
configuration through the API like any other client. This module and ``bascule.serve`` sit
above every layer in docs/architecture.md: they are the places allowed to connect the daemon
and the API.

Every ``bascule`` command imports this module first, so it imports only the CLI: the daemon,
the API and the WUI (FastAPI, uvicorn, the engines, pydantic's models) are imported by the
daemon's own process, and what ``demo`` needs by ``demo``. A client command such as
``bascule status`` loads typer, rich and the HTTP client, nothing of the server side
(tests/unit/cli/test_cli_imports.py holds it to that; bench/cli.py measures it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bascule.cli.errors import CliError
from bascule.cli.main import app
from bascule.cli.session import Session
from bascule.demo import DEMO_BACKENDS, DEMO_VIP, demo_document

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable

    from bascule.cli.client import BasculeClient

#: How long ``bascule demo`` waits for a daemon it started to answer (a cold machine is slow).
DAEMON_START_TIMEOUT = 60.0
#: How many of the daemon log's last lines an error shows.
LOG_TAIL = 12


def run(
    ctx: typer.Context,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info, warning or error [default: BASCULE_LOG_LEVEL or info]"),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            help="ADDRESS:PORT of the HTTPS listener (API and web interface), or none "
            "[default: BASCULE_LISTEN or 127.0.0.1:8443]",
        ),
    ] = None,
) -> None:
    """Run the appliance in the foreground: engines, VIPs, the API on the unix socket and the
    API and web interface over HTTPS."""
    session = Session.of(ctx)
    if os.geteuid() != 0:
        raise CliError("bascule run needs root: it manages HAProxy, addresses and nftables")
    from bascule.serve import command

    # The daemon runs without the CLI (bascule/serve.py): this process becomes it, same pid.
    argv = command(session.data_dir, log_level=log_level, listen=listen)
    os.execv(argv[0], argv)  # noqa: S606 (our interpreter and module, no shell)


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
        return None
    return pid


def _stop_pid(pid: int, timeout: float = 15.0) -> None:
    import contextlib
    import signal

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


def _stop_demo_daemon(session: Session) -> None:
    """Stop the demo's daemon and its data plane (``bascule stop --data-plane``); a daemon
    that does not answer is sent SIGTERM, and an HAProxy left running is stopped."""
    import signal

    from bascule.cli.daemon import wait_exited

    pid = _pid(session.data_dir / "bascule.pid")
    if pid is not None:
        try:
            with session.client() as client:
                client.stop_daemon(data_plane=True)
            stopped = wait_exited(pid, DAEMON_START_TIMEOUT)
        except CliError:
            stopped = False
        if not stopped:
            _stop_pid(pid)
    (session.data_dir / "bascule.pid").unlink(missing_ok=True)
    # A daemon killed earlier left HAProxy serving (as it must, for a restart to adopt it).
    haproxy = _pid(session.data_dir / "haproxy" / "haproxy.pid")
    if haproxy is not None:
        os.kill(haproxy, signal.SIGUSR1)  # HAProxy's soft stop (management.txt 4)
        if not wait_exited(haproxy, 10.0):
            _stop_pid(haproxy)


def log_tail(path: Path, lines: int = LOG_TAIL) -> list[str]:
    """The last ``lines`` lines of the daemon's log, indented, to show under an error."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return [f"(cannot read {path}: {exc.strerror or exc})"]
    tail = text.splitlines()[-lines:]
    if not tail:
        return [f"{path} is empty"]
    return [f"the last lines of {path}:", *(f"  | {line}" for line in tail)]


def wait_for_daemon(
    client: BasculeClient,
    log_path: Path,
    *,
    timeout: float = DAEMON_START_TIMEOUT,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Wait until the daemon answers a request; on failure, the error carries the log's
    last lines."""
    try:
        client.wait_for_answer(timeout, alive=alive)
    except CliError as exc:
        raise CliError(*exc.lines, *log_tail(log_path)) from exc


def _start_backends(demo_dir: Path) -> None:
    import subprocess
    import sys

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


def _start_daemon(data_dir: Path, log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``bascule run`` in the background, its output appended to ``log_path``."""
    import subprocess
    import sys

    log_path.touch(mode=0o600)
    return subprocess.Popen(
        [sys.executable, "-m", "bascule.main", "--data-dir", str(data_dir), "run"],
        stdout=log_path.open("a"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )


def demo(
    ctx: typer.Context,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the demo and the daemon.")] = False,
    port: Annotated[int, typer.Option(help="Port of the demo virtual service.")] = DEMO_VIP[1],
) -> None:
    """Start the daemon in the background with three demo back ends behind one VIP."""
    session = Session.of(ctx)
    demo_dir = session.data_dir / "demo"
    if stop:
        _stop_demo_daemon(session)
        for pid_file in sorted(demo_dir.glob("*.pid")):
            pid = _pid(pid_file)
            if pid is not None:
                _stop_pid(pid)
            pid_file.unlink(missing_ok=True)
        typer.echo("demo stopped")
        return
    session.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    demo_dir.mkdir(exist_ok=True)
    _start_backends(demo_dir)
    log_path = session.data_dir / "bascule.log"
    admin_password: str | None = None
    daemon = None
    if _pid(session.data_dir / "bascule.pid") is None:
        env = dict(os.environ)
        if not (session.data_dir / "bascule.db").exists():
            import secrets

            # First start: the daemon would print the admin password on its stdout, which is
            # the log here; choose it and show it on this terminal instead, once, before
            # anything that can fail (a new user must never be locked out of the WUI).
            admin_password = env.setdefault("BASCULE_ADMIN_PASSWORD", secrets.token_urlsafe(12))
            typer.echo(
                f"The web interface's administrator: user admin, password {admin_password} "
                "(shown once: note it)."
            )
        daemon = _start_daemon(session.data_dir, log_path, env)
    recover = (
        ()
        if admin_password is None
        else (
            "log in as admin with the password printed above once the daemon runs; if it is "
            "lost, set another with: bascule user passwd admin",
        )
    )
    try:
        with session.client() as client:
            wait_for_daemon(client, log_path, alive=lambda: daemon is None or daemon.poll() is None)
            result = client.put_config(demo_document(port), message="demo", dry_run=False)
            if not result.get("applied", False):
                raise CliError(f"the demo could not be applied: {result.get('message')}")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                services = client.status()["virtual_services"]
                if services and services[0]["status"] == "up":
                    break
                time.sleep(0.25)
    except CliError as exc:
        raise CliError(
            *exc.lines, "the demo was not applied: run `bascule demo` again", *recover
        ) from exc
    url = f"http://{DEMO_VIP[0]}:{port}/"
    if admin_password is not None:
        login = "user admin, with the password printed above"
    else:
        login = "user admin, with the password shown when it was first started"
    listen = os.environ.get("BASCULE_LISTEN", "127.0.0.1:8443")
    web = (
        "disabled (BASCULE_LISTEN=none)"
        if listen.strip().lower() == "none"
        else f"https://{listen}/ ({login})"
    )
    typer.echo(
        f"\nBascule is running (data dir {session.data_dir}, log {log_path}).\n"
        f"Web interface: {web}.\n"
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
