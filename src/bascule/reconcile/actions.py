"""The actions of a plan: frozen, keyword-only values that the daemon executes in order.

The planner (planner.py) decides; the daemon's executor translates each action into engine
calls. A test can assert on a plan directly::

    assert plan.actions == (SetWeight(vs="web", server="198.18.0.4:80", weight=3),)

``describe`` says each action in one line, as the CLI and the WUI show a plan before it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from bascule.model import Configuration, RealServerState


@dataclass(frozen=True, kw_only=True)
class EnsureVip:
    """Add a VIP address to the interface whose subnet holds it (or the named one)."""

    address: str
    interface: str | None = None


@dataclass(frozen=True, kw_only=True)
class RemoveVip:
    """Remove a VIP address that no virtual service uses any more."""

    address: str


@dataclass(frozen=True, kw_only=True)
class ReplaceConfig:
    """Render the whole document, validate it, swap it in and reload seamlessly."""

    config: Configuration
    reason: str


@dataclass(frozen=True, kw_only=True)
class ChangeServers:
    """Add and remove real servers of running pools at runtime, then install ``config`` as
    the engine's configuration without reloading; what the engine cannot do so it reloads,
    as ``ReplaceConfig``. ``added`` and ``removed``: (pool name, real server key).
    ``reload_follows``: the engine makes servers added so ordinary ones by a reload it
    defers by a few seconds, and a removal pushes a pending one back (HAProxy's); the
    nftables engine's changes are final."""

    config: Configuration
    added: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    reload_follows: bool = False


@dataclass(frozen=True, kw_only=True)
class SetWeight:
    """Change a real server's engine weight at runtime (no reload)."""

    vs: str
    server: str
    weight: int


@dataclass(frozen=True, kw_only=True)
class SetState:
    """Enable, disable or drain a real server at runtime (no reload)."""

    vs: str
    server: str
    state: RealServerState


Action = EnsureVip | RemoveVip | ReplaceConfig | ChangeServers | SetWeight | SetState


def describe(action: Action) -> str:
    """One line per action, as the CLI and the WUI show a plan."""
    match action:
        case EnsureVip(address=address, interface=interface):
            return f"add VIP {address}" + (f" on {interface}" if interface else "")
        case RemoveVip(address=address):
            return f"remove VIP {address}"
        case ReplaceConfig(reason=reason):
            return f"replace the configuration and reload ({reason})"
        case ChangeServers(added=added, removed=removed, reload_follows=follows):
            changes = [f"add {vs}/{server}" for vs, server in added]
            changes += [f"remove {vs}/{server}" for vs, server in removed]
            if follows and added:  # a deferred reload makes them ordinary (engines/haproxy)
                return f"{', '.join(changes)} (real servers at runtime, a reload follows)"
            return f"{', '.join(changes)} (real servers at runtime, no reload)"
        case SetWeight(vs=vs, server=server, weight=weight):
            return f"set weight of {vs}/{server} to {weight} (runtime, no reload)"
        case SetState(vs=vs, server=server, state=state):
            return f"set {vs}/{server} {state.value} (runtime, no reload)"
    raise AssertionError(f"unknown action {action!r}")  # pragma: no cover
