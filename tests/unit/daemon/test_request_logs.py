"""Request logs on disk: HAProxy's lines parsed, kept with a size cap, rotated, read back."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime
from pathlib import Path

from bascule.daemon.request_logs import RequestLogFile, bind, clean, listen, parse

LINE = (
    '198.18.0.10:40000 [05/Dec/2026:14:50:00.123] site{tls} site_api/198.18.0.5:80 '
    '0/0/1/2/3 200 123 - - ---- 1/1/0/0/0 0/0 "GET /api/x HTTP/1.1"'
)


def test_a_line_gives_its_service_and_date() -> None:
    line = parse(LINE.format(tls="~"))
    assert line.service == "site"  # "site~" is the same service over TLS
    assert line.time == datetime(2026, 12, 5, 14, 50, 0).astimezone()
    assert parse("garbage").service == "" and parse("garbage").time is None


def test_rotation_keeps_the_disk_use_bounded(tmp_path: Path) -> None:
    file = RequestLogFile(tmp_path / "logs" / "requests.log", max_bytes=1000, keep=2)
    for number in range(100):
        file.write(LINE.format(tls="") + f" {number}")
    sizes = [path.stat().st_size for path in file.files()]
    assert len(sizes) == 3 and all(size <= 1000 for size in sizes)  # .2, .1 and the current
    lines = file.read(limit=1000)
    assert lines[-1].text.endswith(" 99")  # the newest last, the oldest gone
    assert len(lines) < 100
    assert [line.text[-3:] for line in file.read(limit=2)] == [" 98", " 99"]
    assert file.read(service="other") == []
    assert file.read(since=datetime(2027, 1, 1).astimezone()) == []
    file.close()


def test_a_batch_rotates_where_a_line_would_pass_the_cap(tmp_path: Path) -> None:
    file = RequestLogFile(tmp_path / "requests.log", max_bytes=1000, keep=3)
    line = LINE.format(tls="").encode()  # 139 bytes with a number and its line feed: 7 a file
    file.write_lines([line + b" %d" % number for number in range(20)])
    sizes = [path.stat().st_size for path in file.files()]
    assert len(sizes) == 3 and all(size <= 1000 for size in sizes)
    assert [line.text[-3:] for line in file.read(limit=1000)][-2:] == [" 18", " 19"]
    file.path.unlink()  # removed behind its back: the next batch opens it again
    file.write_lines([b"after"])
    assert [line.text for line in file.read(limit=1)] == ["after"]
    file.close()


def test_a_batch_keeps_haproxys_lines_and_replaces_anything_else() -> None:
    line = LINE.format(tls="").encode()
    header = b"<134>Dec  5 14:50:00 haproxy[42]: "
    assert clean([line + b"\n", header + line]) == [line, line]  # raw, or with its header
    assert clean([line, b"evil\x1b[2J", b"two\nlines", "caf\u00e9".encode()]) == [
        line,
        b"evil?[2J",
        b"two?lines",
        "caf\u00e9".encode(),  # printable beyond ASCII: kept
    ]
    assert clean([b"<x>not]: a header"]) == [b"<x>not]: a header"]


async def test_lines_sent_to_the_socket_reach_the_file(tmp_path: Path) -> None:
    file = RequestLogFile(tmp_path / "requests.log", max_bytes=10**6, keep=1)
    path = tmp_path / "requests.sock"
    transport = await listen(bind(path), file)
    try:
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        message = f"<134>Dec  5 14:50:00 haproxy[42]: {LINE.format(tls='')}\n"
        sender.sendto(message.encode(), str(path))
        sender.sendto(b"<134>Dec  5 14:50:00 haproxy[42]: evil\x1b[2J line", str(path))
        sender.close()
        for _ in range(100):
            if len(file.read()) == 2:
                break
            await asyncio.sleep(0.01)
        lines = [line.text for line in file.read()]
        assert lines == [LINE.format(tls=""), "evil?[2J line"]  # no control character kept
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        transport.close()
