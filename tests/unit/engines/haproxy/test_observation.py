"""The HAProxy engine's observation from its captured reports (observation.py): the same
readings as one ``ServerObservation`` per server made from both reports' rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from bascule.engines.base import (
    EngineObservation,
    Health,
    ServerColumns,
    ServerObservation,
    ServiceObservation,
    merge_observations,
)
from bascule.engines.haproxy import observation, server_states, server_stats
from bascule.engines.haproxy.observation import Backend, ServerIndex
from bascule.model import RealServerState
from bascule.reconcile.planner import ServerRef, ServerRuntime

SAMPLES = Path(__file__).parent / "samples"
CASES = [
    ("show_servers_state_steady.txt", "show_stat_steady.csv"),
    ("show_servers_state_transitions.txt", "show_stat_transitions.csv"),
]


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def index_of(states: str, *, unknown: bool = True) -> ServerIndex:
    """Every server of ``states`` at a position, in pools named after their backends; with
    ``unknown``, one more server HAProxy does not report."""
    backends: dict[str, Backend] = {}
    positions: dict[ServerRef, int] = {}
    names = [(s.backend, s.server) for s in server_states.parse_servers_state(states)]
    if unknown:
        names.append(("app", "gone"))
    for backend, server in names:
        position = positions[(backend, f"rs-{server}")] = len(positions)
        backends.setdefault(backend, Backend(drain_time=7, servers={})).servers[server] = position
    return ServerIndex(backends=backends, positions=positions, cached={"app2": "site/api"})


def one_per_server(states: str, stat: str) -> dict[ServerRef, ServerObservation]:
    """What the engine made before its columns: a value per server reported by both."""
    by_name = {(s.backend, s.server): s for s in server_states.parse_servers_state(states)}
    made: dict[ServerRef, ServerObservation] = {}
    for row in server_stats.parse_show_stat(stat):
        state = by_name.get((row.proxy, row.server))
        if row.kind is not server_stats.StatKind.SERVER or state is None:
            continue
        made[(row.proxy, f"rs-{row.server}")] = ServerObservation(
            weight=state.uweight,
            state=observation.admin_state(state),
            health=observation.health(row.status),
            check_result=row.check_status,
            check_code=row.check_code,
            check_duration_ms=row.check_duration,
            check_detail=row.last_chk,
            connection_errors=row.connection_errors,
            **observation.counters(row),
        )
    return made


@pytest.mark.parametrize(("states_name", "stat_name"), CASES)
def test_the_columns_read_as_one_observation_per_server(states_name: str, stat_name: str) -> None:
    states, stat = sample(states_name), sample(stat_name)
    seen = observation.observed(index_of(states), states, stat).observation
    assert isinstance(seen.servers, ServerColumns)
    expected = one_per_server(states, stat)
    assert dict(seen.servers.items()) == expected
    assert len(seen.servers) == len(expected)
    assert ("app", "rs-gone") not in seen.servers
    assert seen.servers.get(("app", "rs-gone")) is None
    assert seen.servers.get(("nowhere", "rs-s1")) is None
    with pytest.raises(KeyError):
        seen.servers[("app", "rs-gone")]
    assert seen.runtime() == {ref: obs.runtime for ref, obs in expected.items()}


def test_a_server_in_one_report_only_is_not_observed() -> None:
    states = sample("show_servers_state_steady.txt")
    stat = "\n".join(
        line
        for line in sample("show_stat_steady.csv").splitlines()
        if not line.startswith("app,s2,")
    )
    servers = observation.observed(index_of(states), states, stat).observation.servers
    assert ("app", "rs-s2") not in servers
    assert servers[("app", "rs-s1")].health is Health.up


def test_the_servers_details_and_the_frontends() -> None:
    states, stat = sample("show_servers_state_steady.txt"), sample("show_stat_steady.csv")
    seen = observation.observed(index_of(states), states, stat)
    s1 = seen.observation.servers[("app", "rs-s1")]
    assert (s1.weight, s1.state, s1.health, s1.check_result) == (
        7,
        RealServerState.enabled,
        Health.up,
        "L4OK",
    )
    assert (s1.total_connections, s1.bytes_in, s1.bytes_out) == (6, 492, 4050)
    assert seen.observation.services["web"] == ServiceObservation(
        current_connections=0,
        total_connections=6,
        bytes_in=492,
        bytes_out=4050,
        rate=6,
        total_requests=6,
    )


def test_planning_reads_the_runtime_state_only() -> None:
    states = sample("show_servers_state_transitions.txt")
    seen = observation.observed(index_of(states), states, None)
    by_name = {(s.backend, s.server): s for s in server_states.parse_servers_state(states)}
    assert seen.observation.runtime() == {
        (backend, f"rs-{server}"): ServerRuntime(
            weight=state.uweight, state=observation.admin_state(state)
        )
        for (backend, server), state in by_name.items()
    }
    assert {obs.health for obs in seen.observation.servers.values()} == {Health.unchecked}
    assert seen.caches == {}


def test_drained_servers_and_their_drain_time() -> None:
    states = sample("show_servers_state_steady.txt")
    seen = observation.observed(index_of(states), states, None)
    drained = {
        (s.backend, s.server)
        for s in server_states.parse_servers_state(states)
        if observation.admin_state(s) is RealServerState.drain
    }
    assert drained  # the sample holds a drained server
    assert seen.drained == dict.fromkeys(drained, 7)


def test_engines_columns_are_merged_without_copying() -> None:
    states = sample("show_servers_state_steady.txt")
    columns = observation.observed(index_of(states), states, None).observation.servers
    other = {
        ("l4", "198.18.0.4:80"): ServerObservation(
            weight=1, state=RealServerState.enabled, health=Health.up
        )
    }
    alone = merge_observations([(EngineObservation(running=True, servers=columns), True)])
    assert alone.servers is columns
    both = merge_observations(
        [
            (EngineObservation(running=True, servers=columns), True),
            (EngineObservation(running=True, servers=other), True),
        ]
    )
    assert both.servers[("l4", "198.18.0.4:80")].health is Health.up
    assert both.servers[("app", "rs-s1")] == columns[("app", "rs-s1")]
    assert len(both.servers) == len(columns) + 1
