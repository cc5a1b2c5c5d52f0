"""Log files under a size cap (daemon/logfiles.py), and the journal's form of a log line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from bascule.daemon.logfiles import rotate_if_larger, stderr_file
from bascule.daemon.logs import LogfmtFormatter


def test_a_small_file_is_left_alone(tmp_path: Path) -> None:
    log = tmp_path / "haproxy.log"
    log.write_text("short\n")
    assert not rotate_if_larger(log, max_bytes=100, backups=2)
    assert log.read_text() == "short\n"
    assert not rotate_if_larger(tmp_path / "missing.log", max_bytes=100, backups=2)


def test_rotation_keeps_backups_and_the_writer_goes_on_at_the_start(tmp_path: Path) -> None:
    log = tmp_path / "haproxy.log"
    # the writer holds its descriptor, opened O_APPEND, as HAProxy's master does
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        for generation in range(4):
            os.write(fd, f"generation {generation}\n".encode() * 20)
            assert rotate_if_larger(log, max_bytes=100, backups=2)
            assert log.stat().st_size == 0
        os.write(fd, b"after\n")
    finally:
        os.close(fd)
    assert log.read_bytes() == b"after\n"  # at offset 0, no hole before it
    assert (tmp_path / "haproxy.log.1").read_text().startswith("generation 3")
    assert (tmp_path / "haproxy.log.2").read_text().startswith("generation 2")
    assert not (tmp_path / "haproxy.log.3").exists()
    assert (tmp_path / "haproxy.log.1").stat().st_mode & 0o777 == 0o600


def test_no_backups_only_truncates(tmp_path: Path) -> None:
    log = tmp_path / "bascule.log"
    log.write_text("x" * 200)
    assert rotate_if_larger(log, max_bytes=100, backups=0)
    assert log.read_text() == ""
    assert list(tmp_path.iterdir()) == [log]


def test_stderr_is_a_file_to_rotate_only_when_appended_to(tmp_path: Path) -> None:
    code = "from bascule.daemon.logfiles import stderr_file; print(stderr_file())"
    appended = tmp_path / "appended.log"
    with appended.open("a") as err:
        out = subprocess.run([sys.executable, "-c", code], stderr=err, stdout=subprocess.PIPE)
    assert out.stdout.decode().strip() == str(appended)
    truncating = tmp_path / "truncating.log"
    with truncating.open("w") as err:
        out = subprocess.run([sys.executable, "-c", code], stderr=err, stdout=subprocess.PIPE)
    assert out.stdout.decode().strip() == "None"  # a writer past a hole after truncation
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert piped.stdout.decode().strip() == "None"
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        assert stderr_file(fd=null) is None
    finally:
        os.close(null)


def record(level: int) -> logging.LogRecord:
    return logging.LogRecord("bascule.test", level, __file__, 1, "hello world", None, None)


def test_journal_lines_carry_a_priority_and_no_timestamp() -> None:
    journal = LogfmtFormatter(journal=True)
    assert journal.format(record(logging.INFO)) == (
        '<6>level=info logger=bascule.test msg="hello world"'
    )
    assert journal.format(record(logging.ERROR)).startswith("<3>level=error ")
    assert journal.format(record(logging.WARNING)).startswith("<4>")
    assert journal.format(record(logging.DEBUG)).startswith("<7>")
    plain = LogfmtFormatter().format(record(logging.INFO))
    assert plain.startswith("ts=") and plain.endswith('msg="hello world"')
