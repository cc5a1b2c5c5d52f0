"""The first admin password reaches whoever started the daemon and nothing else (finding 9):
printed on a terminal; under systemd, into a log or a pipe, written to a 0600 file whose path
alone is printed; the file goes once the password was changed."""

from __future__ import annotations

import io
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bascule.daemon import first_admin


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_is_shown_the_password(tmp_path: Path) -> None:
    out = Terminal()
    assert first_admin.deliver("s3cret-pass", data_dir=tmp_path, stream=out) is None
    assert out.getvalue() == "admin password: s3cret-pass\n"
    assert not first_admin.password_file(tmp_path).exists()


def test_anything_else_gets_the_path_of_a_file_only_root_reads(tmp_path: Path) -> None:
    journal = io.StringIO()  # systemd's stdout is the journal: not a terminal
    path = first_admin.deliver("s3cret-pass", data_dir=tmp_path, stream=journal)
    assert path == tmp_path / "initial-admin-password"
    assert path.read_text() == "s3cret-pass\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "s3cret-pass" not in journal.getvalue()
    assert str(path) in journal.getvalue()


def test_the_file_goes_once_the_password_changed(tmp_path: Path) -> None:
    path = first_admin.deliver("s3cret-pass", data_dir=tmp_path, stream=io.StringIO())
    assert path is not None
    written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    assert not first_admin.forget_if_changed(tmp_path, written - timedelta(seconds=1))
    assert path.exists()
    assert first_admin.forget_if_changed(tmp_path, written + timedelta(seconds=1))
    assert not path.exists()
    assert not first_admin.forget_if_changed(tmp_path, None)  # nothing left to delete
