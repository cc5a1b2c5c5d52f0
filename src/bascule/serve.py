"""The daemon's process: what ``bascule run`` becomes once the command line is parsed.

``bascule run`` (bascule/main.py) checks that it runs as root, then replaces its process with
``python -P -m bascule.serve --data-dir DIR [--log-level L] [--listen A]`` (``os.execv``: the
same pid, so the pid file, systemd's ``MainPID`` and its notifications are the daemon's as
before). This module is the daemon's composition root: it reads the settings, wires the
daemon to the API and the WUI (``_Apps``) and runs it, and imports nothing of the CLI: typer,
rich and the CLI's 26 modules cost ~3 MiB resident that a daemon held for its whole life
(issue 15, docs/performance.md section 15; tests/unit/daemon/test_daemon_imports.py holds it
to that). Errors end it as they ended ``bascule run``: ``error: <line>`` on stderr, exit 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bascule.errors import BasculeError
from bascule.text import escape_control

if TYPE_CHECKING:
    from bascule.daemon.doors import DaemonServices

#: The process's name (``/proc/<pid>/comm``: ``ps``, ``top``, ``pgrep``), the console
#: script's as before the exec.
PROCESS_NAME = b"bascule"
_PR_SET_NAME = 15  # prctl(2)


class _Apps:
    """The daemon's ``AppFactory``: one app, the API with the WUI mounted at ``/`` (after the
    API's routes, which keep precedence), built at the first call and served on both doors
    (``bascule.api.app.door``): the unix socket's (``local``: the API, the caller trusted as
    a local administrator) and the HTTPS listener's (every request authenticated, the WUI
    too). The WUI is built when the HTTPS listener asks for its door (none without one)."""

    def __init__(self) -> None:
        self._app: Any = None
        self._wui_mounted = False

    def __call__(self, services: DaemonServices, *, local: bool) -> Any:
        from bascule.api.app import door

        app = self._shared(services)
        if not local and not self._wui_mounted:
            self._mount_wui(app, services)
            self._wui_mounted = True
        return door(app, local=local)

    def _shared(self, services: DaemonServices) -> Any:
        from importlib.resources import files

        from bascule.api.app import create_app
        from bascule.api.deps import ApiServices

        if self._app is not None:
            return self._app
        # Swagger UI's files, installed from npm by setup.sh with the WUI's (web/static/vendor)
        vendor = Path(str(files("bascule.web") / "static" / "vendor"))
        self._app = create_app(
            ApiServices(
                config=services.config,
                system=services.system,
                accounts=services.accounts,
                audit=services.audit,
                statistics=services.statistics,
                stop=services.stop,
                certificates=services.certificates,
                acme=services.acme,
                ha=services.ha,
                request_logs=services.request_logs,
                pages=services.pages,
                http_users=services.http_users,
            ),
            local=True,
            docs_assets=vendor,
        )
        return self._app

    def _mount_wui(self, app: Any, services: DaemonServices) -> None:
        from bascule.api.app import mount_network_only
        from bascule.daemon.logs import recent_lines
        from bascule.web import WebServices, create_wui

        wui = create_wui(
            WebServices(
                config=services.config,
                accounts=services.accounts,
                audit=services.audit,
                statistics=services.statistics,
                system=services.system,
                logs=recent_lines,
                certificates=services.certificates,
                acme=services.acme,
                ha=services.ha,
                request_logs=services.request_logs,
                pages=services.pages,
                http_users=services.http_users,
            )
        )
        mount_network_only(app, "/", wui)


def command(data_dir: Path, *, log_level: str | None, listen: str | None) -> list[str]:
    """The argv ``bascule run`` executes: this interpreter on this module, without the
    current directory first on ``sys.path`` (``-P``: a root daemon imports nothing from where
    it was started)."""
    argv = [sys.executable, "-P", "-m", "bascule.serve", "--data-dir", str(data_dir)]
    if log_level is not None:
        argv += ["--log-level", log_level]
    if listen is not None:
        argv += ["--listen", listen]
    return argv


def _name_process() -> None:
    """``bascule`` in ``/proc/<pid>/comm`` rather than the interpreter's name (Linux)."""
    import contextlib
    import ctypes

    # another C library or kernel keeps the interpreter's name: nothing else depends on it
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_NAME, PROCESS_NAME, 0, 0, 0)


def serve(argv: Sequence[str]) -> None:
    """Read the settings (the options given, then ``BASCULE_*``) and run the daemon."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="bascule run", description="The daemon, as `bascule run` starts it."
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--log-level")
    parser.add_argument("--listen")
    options = parser.parse_args(argv)
    # Neither is the daemon httpx's command line (its probes, agent and pair client import
    # httpx): ~1.4 MiB resident less, as every client command does (cli/connection.py says how).
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from pydantic import ValidationError

    from bascule.daemon import logs, process, systemd
    from bascule.settings import Settings

    overrides: dict[str, Any] = {"data_dir": options.data_dir}
    if options.log_level is not None:
        overrides["log_level"] = options.log_level
    if options.listen is not None:
        overrides["listen"] = options.listen
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()
        )
        raise BasculeError(f"bad setting: {problems}") from exc
    logs.configure(settings.log_level, journal=systemd.journal_stream())
    process.run(settings, make_app=_Apps())


def main(argv: Sequence[str] | None = None) -> None:
    _name_process()
    try:
        serve(sys.argv[1:] if argv is None else argv)
    except BasculeError as exc:
        # as ``bascule run`` reported it (cli/main.py), its control characters shown
        print(f"error: {escape_control(str(exc))}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
