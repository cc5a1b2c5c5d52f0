"""A command imports what it uses: the CLI never loads the server side (issue 9).

Every ``bascule`` command starts by importing the console script's module; importing the
daemon, the API or the WUI there (FastAPI, uvicorn, the engines, the model's pydantic
classes) once cost every command about 0.7 s. These tests look at what a fresh interpreter
has in ``sys.modules`` after importing the CLI, and after running a client command; how long
it takes is measured by bench/cli.py, never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Loaded by `bascule run` (and `demo`, `detect`) only, never by a client command.
SERVER_SIDE = (
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "sqlite3",
    "argon2",
    "cryptography",
    "prometheus_client",
    "bascule.daemon",
    "bascule.api",
    "bascule.web",
    "bascule.engines",
    "bascule.store",
    "bascule.health",
    "bascule.detect",
    "bascule.dsr.script",
    "bascule.model",
    "bascule.settings",
)
# Not even needed to print the help: the HTTP client, YAML, httpx's own CLI.
CLIENT_SIDE = ("httpx", "httpcore", "yaml", "pydantic", "asyncio")

PROBE = """
import atexit, json, sys
loaded = lambda: sorted(name for name, module in sys.modules.items() if module is not None)
atexit.register(lambda: print(json.dumps(loaded()), file=sys.stderr))
{body}
"""


def loaded(body: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``body`` (it may exit)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    modules: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return set(modules)


def among(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("module", ["bascule.main", "bascule.cli.main"])
def test_importing_the_cli_loads_neither_the_server_nor_the_client(module: str) -> None:
    modules = loaded(f"import {module}")
    assert module in modules
    assert among(modules, SERVER_SIDE + CLIENT_SIDE) == []


def test_a_client_command_loads_the_http_client_and_nothing_of_the_server(
    tmp_path: Path,
) -> None:
    # No daemon there: `status` fails after building its client and trying the socket.
    body = (
        "import sys\n"
        f"sys.argv = ['bascule', '--data-dir', {str(tmp_path)!r}, 'status']\n"
        "from bascule.main import main\n"
        "main()\n"
    )
    modules = loaded(body)
    assert "httpx" in modules
    # httpx's own command line (and pygments with it) is not imported with httpx (click is
    # loaded anyway: typer is built on it)
    assert among(modules, ("httpx._main", "pygments")) == []
    assert among(modules, SERVER_SIDE) == []
