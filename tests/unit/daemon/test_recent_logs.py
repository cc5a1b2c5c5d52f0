"""daemon/logs.py: the in-memory ring of recent log lines the System page shows."""

from __future__ import annotations

import logging

from bascule.daemon.logs import RecentLogs


def test_recent_logs_keep_the_newest_lines_formatted() -> None:
    recent = RecentLogs(capacity=3)
    logger = logging.getLogger("bascule.test.recent")
    logger.addHandler(recent)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        for index in range(5):
            logger.info("line", extra={"index": index})
    finally:
        logger.removeHandler(recent)
        logger.propagate = True
    lines = recent.lines()
    assert len(lines) == 3
    assert lines[0].endswith("msg=line index=2") and lines[-1].endswith("index=4")
    assert "level=info logger=bascule.test.recent" in lines[0]
    assert recent.lines(1) == lines[-1:]
    assert recent.lines(0) == []
