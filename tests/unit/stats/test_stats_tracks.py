"""stats/tracks.py: readings of services and real servers become hour and day windows."""

from __future__ import annotations

import pytest

from bascule.errors import NotFound
from bascule.stats import DAY, HOUR, Metric, Reading, ServiceReading, Tracks


def http(
    total: int, *, connections: int = 0, requests: int = 0, check: float | None = None
) -> Reading:
    return Reading(
        current_connections=connections,
        total_connections=total,
        bytes_in=total * 100,
        bytes_out=total * 1000,
        total_requests=requests,
        check_duration_ms=check,
    )


def l4(total: int, packets: int) -> Reading:
    return Reading(
        current_connections=1,
        total_connections=total,
        bytes_in=0,
        bytes_out=0,
        packets=packets,
    )


def web(step: int, **servers: Reading) -> dict[str, ServiceReading]:
    own = http(step * 10, connections=step, requests=step * 20, check=2.0)
    return {"web": ServiceReading(own=own, real_servers=servers)}


def test_rates_gauges_and_real_servers_in_the_hour_window() -> None:
    tracks = Tracks()
    for step in range(4):
        tracks.record(1000.0 + 10 * step, web(step, **{"198.18.0.4:80": http(step * 5)}))
    series = tracks.series("web", "hour", until=1030.0)
    assert series.window == "hour"
    assert series.step == HOUR.step
    assert series.main == "requests_per_s"
    assert len(series.timestamps) == HOUR.size
    assert series.timestamps[-1] == 1030.0
    assert series.values["connections"][-4:] == (0.0, 1.0, 2.0, 3.0)
    assert series.values["new_connections_per_s"][-4:] == (None, 1.0, 1.0, 1.0)
    assert series.values["requests_per_s"][-1] == 2.0
    assert series.values["bytes_out_per_s"][-1] == 1000.0
    assert series.values["check_duration_ms"][-1] == 2.0
    assert "packets_per_s" not in series.values
    server = series.real_servers["198.18.0.4:80"]
    assert server["new_connections_per_s"][-1] == 0.5
    assert server["check_duration_ms"][-1] is None


def test_the_day_window_averages_five_minutes() -> None:
    tracks = Tracks()
    for step in range(31):  # 0..300 s: the first 5-minute bucket and one sample of the next
        tracks.record(10.0 * step, web(step))
    series = tracks.series("web", "day", until=300.0)
    assert len(series.timestamps) == DAY.size
    assert series.timestamps[-2:] == (0.0, 300.0)
    assert series.values["connections"][-2] == pytest.approx(sum(range(30)) / 30)
    assert series.values["connections"][-1] == 30.0


def test_a_counter_reset_shows_no_negative_rate_nor_spike() -> None:
    tracks = Tracks()
    totals = [1000, 1100, 20, 120]  # the engine reloaded after the second sample
    for step, total in enumerate(totals):
        own = http(total, requests=total)
        tracks.record(10.0 * step, {"web": ServiceReading(own=own)})
    rates = tracks.series("web", "hour", until=30.0).values["requests_per_s"][-3:]
    assert rates == (10.0, 2.0, 10.0)


def test_l4_services_keep_packets_and_their_main_rate_is_new_connections() -> None:
    tracks = Tracks()
    tracks.record(0.0, {"dns": ServiceReading(own=l4(0, 0))})
    tracks.record(10.0, {"dns": ServiceReading(own=l4(50, 500))})
    series = tracks.series("dns", "hour", until=10.0)
    assert series.main == "new_connections_per_s"
    assert series.values["packets_per_s"][-1] == 50.0
    assert "requests_per_s" not in series.values
    assert tracks.sparkline("dns", until=10.0) == [5.0]
    assert tracks.main("dns") == "new_connections_per_s"


def test_sparkline_is_the_last_thirty_values_of_the_main_rate() -> None:
    tracks = Tracks()
    for step in range(40):
        tracks.record(10.0 * step, web(step))
    line = tracks.sparkline("web", until=390.0)
    assert len(line) == 30
    assert line == [2.0] * 30
    assert tracks.sparkline("missing", until=390.0) == []


def test_latest_gives_the_newest_bucket() -> None:
    tracks = Tracks()
    assert tracks.latest("web") == {}
    tracks.record(0.0, web(0))
    tracks.record(10.0, web(1))
    latest = tracks.latest("web")
    assert latest[Metric.connections] == 1.0
    assert latest[Metric.requests] == 2.0
    cache = {"cache_hits_per_s", "cache_hit_ratio"}  # only an HTTP service's own reading
    assert set(latest) == {m.value for m in Metric} - {"packets_per_s"} - cache


def test_removed_services_and_servers_are_forgotten() -> None:
    tracks = Tracks()
    tracks.record(0.0, web(0, **{"198.18.0.4:80": http(0), "198.18.0.5:80": http(0)}))
    tracks.record(10.0, web(1, **{"198.18.0.4:80": http(1)}))
    assert set(tracks.series("web", "hour", until=10.0).real_servers) == {"198.18.0.4:80"}
    tracks.record(20.0, {})
    assert "web" not in tracks
    assert tracks.names() == []


def test_a_service_that_changes_kind_starts_afresh() -> None:
    tracks = Tracks()
    tracks.record(0.0, web(1))
    tracks.record(10.0, {"web": ServiceReading(own=l4(10, 10))})
    series = tracks.series("web", "hour", until=10.0)
    assert series.main == "new_connections_per_s"
    assert series.values["connections"][-2:] == (None, 1.0)


def test_a_service_not_sampled_yet_has_the_window_and_no_columns() -> None:
    series = Tracks().series("new", "hour", until=3600.0)
    assert len(series.timestamps) == HOUR.size
    assert series.timestamps[-1] == 3600.0
    assert series.values == {}
    assert series.real_servers == {}


def test_an_unknown_window_is_not_found() -> None:
    with pytest.raises(NotFound, match="week"):
        Tracks().series("web", "week", until=0.0)


def test_tracks_created_in_one_sample_share_their_counts_and_read_as_their_own() -> None:
    # Tracks of one sample share one array of counts per window (SampleCounts) and, per kind,
    # their columns (Cohort); a server added later, a sample skipped (a gap) and several
    # samples a bucket read exactly as a Track alone in its own cohort.
    from bascule.stats.tracks import Track

    tracks = Tracks()
    alone = {key: Track(http(0).metrics()) for key in ("198.18.0.4:80", "198.18.0.5:80")}
    times = [1000.0, 1004.0, 1010.0, 1017.0, 1050.0, 1052.0, 1400.0, 1401.0, 1409.0]
    for step, now in enumerate(times):
        servers = {"198.18.0.4:80": http(step * 3, connections=step % 2)}
        if step >= 3:
            servers["198.18.0.5:80"] = http(step, check=float(step))
        tracks.record(now, web(step, **servers))
        for key, reading in servers.items():
            alone[key].record(now, reading)
    first = tracks._services["web"].real_servers["198.18.0.4:80"]
    later = tracks._services["web"].real_servers["198.18.0.5:80"]
    own = tracks._services["web"].own
    assert first._cohort is own._cohort  # the same kind (no cache here), the same sample
    assert later._cohort is not first._cohort
    assert later._cohort.hour._samples is not first._cohort.hour._samples
    for window in ("hour", "day"):
        series = tracks.series("web", window, until=1409.0)
        for key, track in alone.items():
            assert series.real_servers[key] == track.ring(window).points(1409.0).values


def test_removed_servers_give_their_means_back_and_the_others_read_as_their_own() -> None:
    from bascule.stats.tracks import Track

    tracks = Tracks()
    keys = [f"198.18.0.{n}:80" for n in range(4, 8)]
    alone: dict[str, Track] = {}
    for step in range(12):
        # one server leaves at step 4, another comes back (afresh) at step 8
        present = [k for i, k in enumerate(keys) if not (i == 1 and 4 <= step < 8)]
        servers = {
            k: http(step * (i + 1), connections=i) for i, k in enumerate(keys) if k in present
        }
        for key in set(alone) - set(servers):
            del alone[key]
        tracks.record(10.0 * step, web(step, **servers))
        for key, reading in servers.items():
            alone.setdefault(key, Track(reading.metrics())).record(10.0 * step, reading)
    series = tracks.series("web", "hour", until=110.0)
    assert set(series.real_servers) == set(keys)
    for key, track in alone.items():
        assert series.real_servers[key] == track.hour.points(110.0).values
    assert series.real_servers[keys[1]]["connections"][-5:] == (None, 1.0, 1.0, 1.0, 1.0)
