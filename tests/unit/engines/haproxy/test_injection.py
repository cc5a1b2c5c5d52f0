"""No input can inject HAProxy configuration.

Two lines of defence, each proven here: the model refuses what cannot be quoted (control
characters: newlines, CR, NUL...), and view.py strong-quotes everything else (plus '%'
doubling in log-format arguments). For the allowed-but-nasty values the proof is threefold:
the real ``haproxy -c`` accepts the file, the file has exactly the directives of the same
service with harmless values, and HAProxy really sends/matches the values verbatim.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.view import HaproxyGlobals, build_view
from bascule.errors import InvalidConfiguration
from bascule.model import parse_document

from .conftest import HAPROXY

GLOBALS = HaproxyGlobals(stats_socket="/run/bascule/haproxy.sock", maxconn=4096, nbthread=2)

NASTY_HEADER_VALUE = 'it\'s "quoted" # not a comment $HOME %[src] %{+Q}o \\ end'
NASTY_REGEX = "^<b class='x'>\"up\" # [a-z]+ \\$HOME</b>$"
NASTY_PATH = "/it's#frag$HOME/%7B'%[src]"
NASTY_BODY = "{'a': \"b\"} # $HOME %[src] \\"
NASTY_HEADER_NAME = "X-It's#$%"


def document(check: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "web",
                "address": "198.18.0.100",
                "port": 80,
                "check": {"type": "http", **check},
                "real_servers": [{"address": "198.18.0.4", "port": 80}],
                **fields,
            }
        ]
    }


# --------------------------------------------------------------------------- refused


FIELDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "name": lambda bad: document({}, name=f"web{bad}listen evil"),
    "path": lambda bad: document({"path": f"/a{bad}server evil 1.2.3.4:80"}),
    "host": lambda bad: document({"host": f"www.example.com{bad}bind :1"}),
    "header name": lambda bad: document({"headers": {f"X-A{bad}": "v"}}),
    "header value": lambda bad: document({"headers": {"X-A": f"v{bad}listen evil"}}),
    "expect_body": lambda bad: document({"expect_body": f"ok{bad}listen evil"}),
    "post_data": lambda bad: document({"method": "POST", "post_data": f"x{bad}listen evil"}),
    "send_hex": lambda bad: document({"type": "binary", "send_hex": f"0a{bad}"}, type="generic"),
    "address": lambda bad: document({}, address=f"198.18.0.100{bad}"),
}


@pytest.mark.parametrize("bad", ["\n", "\r", "\r\n", "\x00", "\t", "\x0b", "\x1b", "\x7f"])
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_control_characters_are_refused_by_the_model(field: str, bad: str) -> None:
    with pytest.raises(InvalidConfiguration):
        parse_document(FIELDS[field](bad))


# A trailing newline is the classic hole: Python's "$" matches just before it.
TRAILING: dict[str, Callable[[str], dict[str, Any]]] = {
    "name": lambda bad: document({}, name=f"web{bad}"),
    "path": lambda bad: document({"path": f"/a{bad}"}),
    "host": lambda bad: document({"host": f"www.example.com{bad}"}),
    "header name": lambda bad: document({"headers": {f"X-A{bad}": "v"}}),
    "header value": lambda bad: document({"headers": {"X-A": f"v{bad}"}}),
    "expect_body": lambda bad: document({"expect_body": f"ok{bad}"}),
    "post_data": lambda bad: document({"method": "POST", "post_data": f"x{bad}"}),
    "send_hex": lambda bad: document({"type": "binary", "send_hex": f"0a{bad}"}, type="generic"),
    "expect_hex": lambda bad: document(
        {"type": "binary", "expect_hex": f"0a{bad}"}, type="generic"
    ),
    "address": lambda bad: document({}, address=f"198.18.0.100{bad}"),
    "interface": lambda bad: document({}, interface=f"eth0{bad}"),
    "persistence cookie": lambda bad: document({}, persistence={"cookie": f"ID{bad}"}),
    "adaptive url": lambda bad: document({}, scheduler="adaptive", adaptive={"url": f"/l{bad}"}),
}


@pytest.mark.parametrize("bad", ["\n", "\r\n", "\x00"])
@pytest.mark.parametrize("field", sorted(TRAILING))
def test_trailing_control_characters_are_refused_by_the_model(field: str, bad: str) -> None:
    with pytest.raises(InvalidConfiguration):
        parse_document(TRAILING[field](bad))


def test_empty_header_value_is_refused_by_the_model() -> None:
    # HAProxy cannot send it: '' ends the arguments and a log-format evaluating to "" drops
    # the header silently.
    with pytest.raises(InvalidConfiguration, match="must not be empty"):
        parse_document(document({"headers": {"X-A": ""}}))


# --------------------------------------------------------------------------- rendered


def nasty() -> dict[str, Any]:
    return document(
        {
            "method": "POST",
            "path": NASTY_PATH,
            "headers": {NASTY_HEADER_NAME: NASTY_HEADER_VALUE},
            "post_data": NASTY_BODY,
            "expect_body": NASTY_REGEX,
        }
    )


def harmless() -> dict[str, Any]:
    return document(
        {
            "method": "POST",
            "path": "/x",
            "headers": {"X": "x"},
            "post_data": "x",
            "expect_body": "x",
        }
    )


def config_of(doc: dict[str, Any]) -> str:
    return render(build_view(parse_document(doc), GLOBALS))


def directives(text: str) -> list[str]:
    # Split on "\n" only: that is how HAProxy reads lines (str.splitlines would also split
    # on characters HAProxy treats as ordinary bytes).
    return [line.split(" ", 1)[0] for line in (raw.strip() for raw in text.split("\n")) if line]


def test_nasty_values_render_exactly_the_harmless_directives() -> None:
    text, reference = config_of(nasty()), config_of(harmless())
    assert text.count("\n") == reference.count("\n")
    assert directives(text) == directives(reference)
    # Only the check's send/expect lines differ, and only by the values.
    changed = [
        (a, b) for a, b in zip(text.split("\n"), reference.split("\n"), strict=True) if a != b
    ]
    assert [a.split()[:3] for a, _ in changed] == [
        ["http-check", "send", "meth"],
        ["http-check", "expect", "rstring"],
    ]


def test_nasty_values_are_strongly_quoted() -> None:
    text = config_of(nasty())
    send = next(line.strip() for line in text.split("\n") if "http-check send" in line)
    assert send == (
        "http-check send meth POST"
        " uri '/it'\\''s#frag$HOME/%7B'\\''%[src]'"
        " ver HTTP/1.1 hdr Host '198.18.0.100'"
        " hdr 'X-It'\\''s#$%'"
        " 'it'\\''s \"quoted\" # not a comment $HOME %%[src] %%{+Q}o \\ end'"
        " body '{'\\''a'\\'': \"b\"} # $HOME %[src] \\'"
    )
    assert (
        "    http-check expect rstring '^<b class='\\''x'\\''>\"up\" # [a-z]+ \\$HOME</b>$'\n"
        in text
    )


def test_haproxy_accepts_the_nasty_values(haproxy_check: Callable[..., str]) -> None:
    assert "Configuration file is valid" in haproxy_check(config_of(nasty()))


# --------------------------------------------------------------------------- end to end


class CheckTarget:
    """A one-shot HTTP server that records the health check request and answers it."""

    def __init__(self, body: bytes) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(10)
        self.port: int = self.listener.getsockname()[1]
        self.body = body
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(self.body), self.body)
                )

    def close(self) -> None:
        self.listener.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def show_stat(sock_path: Path) -> str:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(str(sock_path))
        client.sendall(b"show stat\n")
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    return data.decode()


@pytest.fixture
def check_target() -> Iterator[CheckTarget]:
    # The body the nasty regex must match: quotes, '#', a '$' that is literal in the regex.
    target = CheckTarget(body=b"<b class='x'>\"up\" # abc $HOME</b>\n</html>")
    yield target
    target.close()


def test_haproxy_sends_and_matches_the_nasty_values_verbatim(
    tmp_path: Path, check_target: CheckTarget
) -> None:
    if not HAPROXY.exists():
        pytest.skip(f"HAProxy is not installed at {HAPROXY}")
    doc = nasty()
    service = doc["virtual_services"][0]
    service.update(
        address="127.0.0.1",
        port=free_port(),
        real_servers=[{"address": "127.0.0.1", "port": check_target.port}],
    )
    service["check"].update(interval=1, rise=1, fall=1)
    # A multi-line regex anchor: the body ends "</b>\n</html>", so "$" must not be literal.
    service["check"]["expect_body"] = NASTY_REGEX.replace("</b>$", "</b>")
    sock_path = tmp_path / "haproxy.sock"
    globals_ = HaproxyGlobals(stats_socket=str(sock_path), maxconn=256, nbthread=1)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(build_view(parse_document(doc), globals_)))
    process = subprocess.Popen(
        [str(HAPROXY), "-db", "-f", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        status = ""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if not sock_path.exists() or not check_target.requests:
                continue
            rows = [row.split(",") for row in show_stat(sock_path).splitlines()]
            header = rows[0]
            server = next(row for row in rows[1:] if row[1] == f"127.0.0.1:{check_target.port}")
            status = server[header.index("check_status")]
            if status not in {"", "INI"}:
                break
        assert check_target.requests, "HAProxy never sent a health check"
        request = check_target.requests[0]
        assert request.startswith(b"POST /it's#frag$HOME/%7B'%[src] HTTP/1.1\r\n")
        assert b"\r\nx-it's#$%: " + NASTY_HEADER_VALUE.encode() + b"\r\n" in request, request
        assert request.endswith(b"\r\n\r\n" + NASTY_BODY.encode())
        assert status == "L7OK", status  # the nasty regex matched the body
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
