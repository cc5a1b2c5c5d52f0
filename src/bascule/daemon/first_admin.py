"""The first start's ``admin`` password, handed to whoever started the daemon, once.

At the very start of the management plane: with no user at all, ``bascule run`` creates
``admin`` with ``BASCULE_ADMIN_PASSWORD`` (never shown: whoever set it knows it) or a random
password, which must reach a person and nothing else:

- on a **terminal**, it is printed there (``admin password: ...``), once;
- anywhere else (**systemd**, whose stdout is the journal; a log file; a pipe), printing it
  would keep it in a log that many can read and nobody rotates away, so it is written to
  ``<data dir>/initial-admin-password`` (0600 in the 0700 data directory: root's) and only
  that path is printed. The file is deleted at the next start once ``admin``'s password was
  changed (it no longer opens anything); deleting it by hand after reading it is better.

``bascule demo`` chooses the password itself, shows it on the terminal that ran it, and hands
it to the daemon in ``BASCULE_ADMIN_PASSWORD``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

FILENAME = "initial-admin-password"


def password_file(data_dir: Path) -> Path:
    return data_dir / FILENAME


def deliver(password: str, *, data_dir: Path, stream: TextIO) -> Path | None:
    """Show ``password`` on ``stream`` if it is a terminal, else write it to the one-time
    file and show its path; the file, or ``None`` when printed."""
    if stream.isatty():
        stream.write(f"admin password: {password}\n")
        stream.flush()
        return None
    path = password_file(data_dir)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, f"{password}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    stream.write(
        f"admin password: written to {path} (mode 0600), not printed: read it, log in as "
        "admin, change it, and delete the file\n"
    )
    stream.flush()
    return path


def forget_if_changed(data_dir: Path, password_changed_at: datetime | None) -> bool:
    """Delete the one-time file once ``admin``'s password changed after it was written
    (or ``admin`` is gone); whether it was deleted."""
    path = password_file(data_dir)
    try:
        written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return False
    if password_changed_at is not None and password_changed_at <= written:
        return False
    path.unlink(missing_ok=True)
    return True
