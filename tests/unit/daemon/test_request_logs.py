"""Request logs on disk: HAProxy's lines parsed, kept with a size cap, rotated, read back."""

from __future__ import annotations

import asyncio
import os
import stat
from datetime import datetime
from pathlib import Path

from bascule.daemon.request_logs import LogPipe, RequestLogFile, clean, listen, parse

LINE = (
    "198.18.0.10:40000 [05/Dec/2026:14:50:00.123] site{tls} site_api/198.18.0.5:80 "
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


async def _lines(file: RequestLogFile, count: int) -> list[str]:
    """The file's lines once it has ``count`` (or after 5 s: the test's assertion says)."""
    deadline = asyncio.get_running_loop().time() + 5
    for _ in range(500):
        if len(file.read()) >= count or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.01)
    return [line.text for line in file.read(limit=1000)]


async def test_lines_written_to_the_pipe_reach_the_file(tmp_path: Path) -> None:
    file = RequestLogFile(tmp_path / "requests.log", max_bytes=10**6, keep=1)
    pipe = LogPipe(tmp_path / "haproxy" / "requests.fifo")
    receiver = await listen(pipe, file)
    try:
        assert stat.S_ISFIFO(pipe.path.stat().st_mode)
        assert pipe.path.stat().st_mode & 0o777 == 0o600
        writer = os.open(pipe.path, os.O_WRONLY | os.O_NONBLOCK)  # as HAProxy holds it
        os.write(writer, f"{LINE.format(tls='')}\n".encode())
        os.write(writer, b"evil\x1b[2J line\n")
        assert await _lines(file, 2) == [LINE.format(tls=""), "evil?[2J line"]
        # a line in two writes is kept whole; lines written during the pause are all read
        os.write(writer, b"first half,")
        os.write(writer, b" second half\n" + b"".join(b"line %d\n" % n for n in range(500)))
        os.close(writer)
        lines = await _lines(file, 503)
        assert lines[2] == "first half, second half" and lines[-1] == "line 499"
        assert len(lines) == 503
    finally:
        receiver.close()


async def test_a_new_daemon_reads_the_fifo_a_running_haproxy_holds(tmp_path: Path) -> None:
    path = tmp_path / "requests.fifo"
    path.write_text("")  # not a FIFO (the socket of an earlier version): replaced
    first = LogPipe(path)
    assert stat.S_ISFIFO(path.stat().st_mode)
    haproxy = os.dup(first.write_fd)  # the descriptor the master inherited
    identity = first.identity()
    first.close()  # the daemon stops; HAProxy keeps writing (its lines are lost meanwhile)
    second = LogPipe(path)  # the next daemon: the same FIFO, not a new one
    assert second.identity() == identity
    file = RequestLogFile(tmp_path / "requests.log", max_bytes=10**6, keep=1)
    receiver = await listen(second, file)
    try:
        os.write(haproxy, b"after the restart\n")
        assert await _lines(file, 1) == ["after the restart"]
    finally:
        os.close(haproxy)
        receiver.close()
