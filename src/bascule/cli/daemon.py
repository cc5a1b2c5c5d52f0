"""``bascule stop``: ask the running daemon to stop, with or without the data plane.

By itself it stops the daemon only (as SIGTERM and ``systemctl stop`` do): HAProxy, Bascule's
nftables tables and the VIPs keep serving on the last applied state, with their connections,
stick tables and persistence sets, and the next ``bascule run`` adopts them. That is how a
daemon is restarted or upgraded without a lost request. ``--data-plane`` stops them too, after
``shutdown_grace`` seconds of draining: nothing of Bascule is left running.

Over the local socket it waits until the daemon's process has exited (its pid file is gone);
over ``--url``, until the daemon stops answering.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from bascule.cli.errors import CliError
from bascule.cli.session import Session

#: The daemon's pid file in its data dir, written by ``bascule run``.
PID_FILE = "bascule.pid"


def stop(
    ctx: typer.Context,
    data_plane: Annotated[
        bool,
        typer.Option(
            "--data-plane",
            help="Also drain and stop HAProxy, delete Bascule's nftables tables and remove "
            "the VIPs. Without it traffic keeps flowing and the next start adopts it.",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="How long to wait for the daemon to stop (seconds).")
    ] = 60.0,
) -> None:
    """Stop the daemon; the data plane keeps running unless --data-plane."""
    session = Session.of(ctx)
    pid = None if session.remote else daemon_pid(session.data_dir)
    with session.client() as client:
        client.stop_daemon(data_plane=data_plane)
        if pid is None and not client.wait_silent(timeout):
            raise CliError(f"the daemon still answers after {timeout:g} s")
    if pid is not None and not wait_exited(pid, timeout):
        raise CliError(f"the daemon (pid {pid}) still runs after {timeout:g} s")
    if data_plane:
        typer.echo("the daemon and the data plane stopped")
    else:
        typer.echo(
            "the daemon stopped; HAProxy, the nftables tables and the VIPs keep serving "
            "(the next `bascule run` adopts them; `bascule stop --data-plane` stops them too)"
        )


def daemon_pid(data_dir: Path) -> int | None:
    """The pid of the daemon running on ``data_dir``, if one does."""
    try:
        pid = int((data_dir / PID_FILE).read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def wait_exited(pid: int, timeout: float, *, poll: float = 0.1) -> bool:
    """Wait until process ``pid`` is gone (or a zombie); whether it went within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[:1]
        except OSError:
            return True
        if state == ["Z"]:
            return True
        time.sleep(poll)
    return False
