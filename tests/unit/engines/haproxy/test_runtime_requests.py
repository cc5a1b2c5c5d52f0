"""server_stats.py: HTTP request totals from ``show stat`` (req_tot, else the hrsp_* responses)."""

from __future__ import annotations

from pathlib import Path

from bascule.engines.haproxy import server_stats

SAMPLES = Path(__file__).parent / "samples"


def stats_by_name(name: str) -> dict[tuple[str, str], server_stats.ServerStat]:
    text = (SAMPLES / name).read_text()
    return {(s.proxy, s.server): s for s in server_stats.parse_show_stat(text)}


def test_frontends_count_requests_with_req_tot() -> None:
    assert stats_by_name("show_stat_steady.csv")[("web", "FRONTEND")].requests == 6


def test_servers_count_the_responses_they_gave() -> None:
    # HAProxy 2.6 has no req_tot on a server row: the sum of hrsp_1xx..hrsp_other stands in.
    stats = stats_by_name("show_stat_steady.csv")
    assert stats[("app", "s1")].requests == 6
    assert stats[("app", "s2")].requests == 0
