"""Structured log lines (logfmt) for the daemon: ``ts=... level=info msg="..." key=value``.

The daemon logs to stderr (the journal keeps it); ``configure`` also keeps the last lines in
memory (``RecentLogs``) for the WUI's System page (``recent_lines``).
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


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                fields[key] = value
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return " ".join(f"{k}={_value(v)}" for k, v in fields.items())


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


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler, _RECENT]
    root.setLevel(level.upper())
    # uvicorn's access lines and httpx's one line per L4 http check are noise at info.
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
