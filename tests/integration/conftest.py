"""Fixtures for integration tests: throwaway network namespaces (see netns.py).

`topology` gives each test a fresh client, load balancer and three real servers;
`make_topology(**kwargs)` builds others (more real servers, extra client addresses). Both
skip the test, with the reason, where root or `ip netns` is missing; a test that builds its
own `Topology` calls `netns.require_root()` first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from netns import Topology, cleanup_stale, netns_available, require_root


@pytest.fixture(scope="session")
def _stale_namespaces_removed() -> None:
    """Once per run: remove `bsc*` namespaces whose creating process died (crashed runs)."""
    if os.geteuid() == 0 and netns_available() is None:
        cleanup_stale()


@pytest.fixture
def make_topology(_stale_namespaces_removed: None) -> Iterator[Callable[..., Topology]]:
    """A factory: `make_topology(real_servers=2, client_extra_addresses=3)` -> built Topology.

    Every topology it built is removed when the test ends.
    """
    require_root()
    built: list[Topology] = []

    def make(*args: Any, **kwargs: Any) -> Topology:
        topology = Topology(*args, **kwargs).__enter__()
        built.append(topology)
        return topology

    yield make
    errors = []
    for topology in reversed(built):
        try:
            topology.close()
        except Exception as exc:  # remove the others all the same
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def topology(make_topology: Callable[..., Topology]) -> Topology:
    """A built topology: client, lb and real servers rs1..rs3 (nothing started in them)."""
    return make_topology(real_servers=3)
