"""``show table`` / ``clear table`` (runtime.py) against answers captured from HAProxy 2.6.12.

The samples were taken from the stick tables of services Bascule generated (persistence
source_ip fallback, super_http and selected_header) in tests/integration/test_l7_persistence.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bascule.engines.haproxy import runtime
from bascule.engines.haproxy.runtime import StickEntry

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def test_table_commands() -> None:
    assert runtime.show_table("web") == "show table web"
    assert runtime.clear_table("web.src") == "clear table web.src"
    with pytest.raises(ValueError, match="table name"):
        runtime.show_table("web; clear table x")


def test_an_ip_table() -> None:
    assert runtime.parse_show_table(sample("show_table_ip.txt")) == [
        StickEntry(key="198.18.0.10", expires_ms=599913, server_id=2, server_key="198.18.0.12:80")
    ]


def test_a_binary_table_shows_hex_keys() -> None:
    entries = runtime.parse_show_table(sample("show_table_binary.txt"))
    assert len(entries) == 4
    assert entries[0] == StickEntry(
        key="03527602F5CF95CF5E47CB0806B49FD0FB3F62A6",
        expires_ms=594558,
        server_id=2,
        server_key="198.18.0.12:80",
    )


def test_a_string_table_unescapes_spaces() -> None:
    entries = runtime.parse_show_table(sample("show_table_string.txt"))
    assert [(e.key, e.server_key) for e in entries] == [
        ("tenant 0", "198.18.0.11:80"),
        ("tenant 1", "198.18.0.12:80"),
        ("tenant 2", "198.18.0.13:80"),
        ("tenant 3", "198.18.0.11:80"),
    ]


def test_an_empty_table() -> None:
    assert runtime.parse_show_table(sample("show_table_empty.txt")) == []


def test_show_peers_tells_whether_the_initial_resync_is_over() -> None:
    # show_peers_resyncing: a worker 1 s after it started; resynced: after it learnt the
    # previous worker's table (only its first two lines were captured)
    assert runtime.peers_resynced(sample("show_peers_resyncing.txt"), "bascule") is False
    assert runtime.peers_resynced(sample("show_peers_resynced.txt"), "bascule") is True
    assert runtime.peers_resynced(sample("show_peers_resynced.txt"), "other") is None
    assert runtime.peers_resynced("", "bascule") is None


def test_show_peers_tells_the_remote_peers_status() -> None:
    # captured on lb1 of tests/integration/test_ha_sync.py while its peer's TLS was refused
    connecting = sample("show_peers_pair_connecting.txt")
    assert runtime.remote_peers(connecting) == {"lb2": "CONN"}  # the local peer is not listed
    established = connecting.replace("lb2(remote,inactive)", "lb2(remote,active)").replace(
        "last_status=CONN", "last_status=ESTA"
    )
    assert runtime.remote_peers(established) == {"lb2": "ESTA"}
    assert runtime.remote_peers(sample("show_peers_resynced.txt")) == {}
