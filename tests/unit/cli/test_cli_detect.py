"""``bascule detect`` (runs the probes locally) and how ``apply`` shows detections."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from bascule.cli.detect import parse_target
from bascule.cli.errors import CliError
from bascule.cli.main import app
from bascule.cli.output import detection_lines


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.18.0.11:80", ("198.18.0.11", 80)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
    ],
)
def test_targets(text: str, expected: tuple[str, int]) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text", ["198.18.0.11", "198.18.0.11:0", "198.18.0.11:x", "host:80", "2001:db8::1:80", ":80"]
)
def test_bad_targets(text: str) -> None:
    with pytest.raises(CliError, match="is not ADDRESS:PORT"):
        parse_target(text)


@pytest.fixture
def smtp_server() -> Iterator[int]:
    """A thread that greets every connection with an SMTP banner."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"220 mx.example ESMTP\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_detect_prints_the_evidence(smtp_server: int) -> None:
    result = CliRunner().invoke(app, ["detect", f"127.0.0.1:{smtp_server}"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        'detected: generic with an smtp check — "220 mx.example ESMTP" '
        f"from 127.0.0.1:{smtp_server}"
    )
    assert lines[1].split() == ["type", "generic"]
    assert lines[2].split() == ["check", "smtp"]


def test_detect_json(smtp_server: int) -> None:
    result = CliRunner().invoke(app, ["detect", "--json", f"127.0.0.1:{smtp_server}"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["type"] == "generic"
    assert answer["check"] == "smtp"
    assert answer["protocol"] == "smtp"
    assert answer["conclusive"] is True


def test_a_bad_target_is_a_clear_error() -> None:
    result = CliRunner().invoke(app, ["detect", "web:80"])
    assert result.exit_code == 1
    assert "is not ADDRESS:PORT" in result.output


def test_detection_lines_of_an_apply_result() -> None:
    detections = [
        {"virtual_service": "web", "evidence": "detected: http — x", "notes": []},
        {"virtual_service": "rdp", "evidence": "detected: y", "notes": ["n1"]},
    ]
    assert detection_lines(detections) == [
        "web: detected: http — x",
        "rdp: detected: y",
        "rdp: note: n1",
    ]
