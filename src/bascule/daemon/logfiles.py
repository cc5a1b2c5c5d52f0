"""Log files under a size cap: HAProxy's ``haproxy.log`` and the daemon's own, when a file.

Two files can grow without end on an appliance that runs for months: ``haproxy/haproxy.log``
(the HAProxy master's standard output and error: alerts, warnings, servers going up and down;
the daemon reads the reason of a failed reload from it) and, when the daemon's standard error
is a file rather than the journal (``bascule demo`` appends it to ``bascule.log``), the
daemon's own log. Under systemd the daemon logs to the journal, which has its own limits
(journald.conf ``SystemMaxUse=``), and this only concerns ``haproxy.log``.

Neither file is reopened by its writer (HAProxy keeps the descriptor it was started with
across reloads; the daemon's stderr is whatever it was given), so rotation is the
"copytruncate" of logrotate: copy the file to ``<name>.1`` (the older copies shift to ``.2``,
``.3``...), then truncate it in place. The writers opened it with ``O_APPEND`` (HAProxy's by
``shell._spawn_session``, the demo's by ``open("a")``), so their next write lands at the new
end, at offset 0, and not past a hole. Lines written between the copy and the truncation are
lost, as with logrotate's copytruncate; the window is one copy of at most ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import stat
from pathlib import Path

log = logging.getLogger("bascule.logfiles")


def rotate_if_larger(path: Path, *, max_bytes: int, backups: int) -> bool:
    """Rotate ``path`` when it is larger than ``max_bytes``, keeping ``backups`` old copies
    (``path.1`` the newest); whether it did. A missing file is no error."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size <= max_bytes:
        return False
    if backups > 0:
        for number in range(backups - 1, 0, -1):
            older = path.with_name(f"{path.name}.{number}")
            with contextlib.suppress(FileNotFoundError):
                older.replace(path.with_name(f"{path.name}.{number + 1}"))
        kept = path.with_name(f"{path.name}.1")
        staging = path.with_name(f"{path.name}.1.tmp")
        shutil.copyfile(path, staging)
        staging.chmod(0o600)
        staging.replace(kept)
    with path.open("r+b") as file:
        file.truncate(0)
    log.info("rotated a log file", extra={"path": str(path), "bytes": size})
    return True


def stderr_file(fd: int = 2) -> Path | None:
    """The regular file standard error is appended to, ``None`` for a terminal, a pipe or
    the journal's socket (and for a file opened without ``O_APPEND``, whose writer would
    write past a hole after a truncation)."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        if not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
            return None
        target = Path(f"/proc/self/fd/{fd}").readlink()
    except OSError:
        return None
    return target if target.is_absolute() and target.exists() else None
