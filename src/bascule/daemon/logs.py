"""Structured log lines (logfmt) for the daemon: ``ts=... level=info msg="..." key=value``.

The daemon logs to stderr. Under systemd that is the journal (``journal=True``, see
daemon/systemd.py): each line then starts with its syslog priority (``<6>`` for info), which
journald reads as the line's level, and carries no ``ts=``, since the journal stamps every
line itself. Elsewhere (by hand, the demo's log file) lines carry their own UTC time; a
log *file* is kept under a size cap by daemon/logfiles.py. ``configure`` also keeps the last
lines in memory (``RecentLogs``) for the WUI's System page (``recent_lines``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque

# Attributes every LogRecord has; anything else came from ``extra=`` and is printed as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of msg
}


def _value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text)
    return text


# syslog(3) priorities of Python's levels, for journald's SyslogLevelPrefix.
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class LogfmtFormatter(logging.Formatter):
    """One logfmt line per record; ``journal``: the journal's form (priority prefix, no
    timestamp of its own)."""

    def __init__(self, *, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {}
        if not self.journal:
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            fields["ts"] = f"{ts}.{int(record.msecs):03d}Z"
        fields |= {
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                fields[key] = value
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        line = " ".join(f"{k}={_value(v)}" for k, v in fields.items())
        if self.journal:
            priority = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
            return f"<{priority}>{line}"
        return line


class RecentLogs(logging.Handler):
    """The last ``capacity`` log lines, formatted, in memory (oldest dropped first)."""

    def __init__(self, capacity: int = 500) -> None:
        super().__init__()
        self._lines: deque[str] = deque(maxlen=capacity)
        self.setFormatter(LogfmtFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record))
        except Exception:  # logging must never raise (as logging.Handler.emit does)
            self.handleError(record)

    def lines(self, limit: int | None = None) -> list[str]:
        """The newest ``limit`` lines (all when ``None``), oldest first."""
        lines = list(self._lines)
        if limit is None:
            return lines
        return lines[-limit:] if limit > 0 else []


_RECENT = RecentLogs()


def recent_lines(limit: int = 200) -> list[str]:
    """The daemon's last log lines (those logged since ``configure``), oldest first."""
    return _RECENT.lines(limit)


def configure(level: str = "INFO", *, journal: bool = False) -> None:
    """Log to stderr (in the journal's form when ``journal``) and keep the recent lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter(journal=journal))
    root = logging.getLogger()
    root.handlers[:] = [handler, _RECENT]
    root.setLevel(level.upper())
    # uvicorn's access lines and httpx's one line per L4 http check are noise at info.
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
