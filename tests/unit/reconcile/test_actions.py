"""reconcile/actions.py: each action said in one line, as the CLI and the WUI show a plan."""

from __future__ import annotations

from bascule.model import RealServerState, parse_document
from bascule.reconcile.actions import (
    ChangeServers,
    EnsureVip,
    RemoveVip,
    ReplaceConfig,
    SetState,
    SetWeight,
    describe,
)


def test_describe_every_action() -> None:
    config = parse_document({"virtual_services": []})
    assert [
        describe(a)
        for a in (
            EnsureVip(address="198.18.0.100", interface="eth1"),
            EnsureVip(address="198.18.0.100"),
            RemoveVip(address="198.18.0.100"),
            ReplaceConfig(config=config, reason="why"),
            ChangeServers(
                config=config,
                added=(("web", "198.18.0.5:80"),),
                removed=(("api", "198.18.0.6:80"),),
                reload_follows=True,
            ),
            ChangeServers(config=config, added=(("web", "198.18.0.5:80"),)),
            ChangeServers(config=config, removed=(("api", "198.18.0.6:80"),), reload_follows=True),
            ChangeServers(config=config, removed=(("api", "198.18.0.6:80"),)),
            SetWeight(vs="web", server="198.18.0.4:80", weight=3),
            SetState(vs="web", server="198.18.0.4:80", state=RealServerState.disabled),
        )
    ] == [
        "add VIP 198.18.0.100 on eth1",
        "add VIP 198.18.0.100",
        "remove VIP 198.18.0.100",
        "replace the configuration and reload (why)",
        "add web/198.18.0.5:80, remove api/198.18.0.6:80"
        " (real servers at runtime, a reload follows)",
        "add web/198.18.0.5:80 (real servers at runtime, no reload)",
        "remove api/198.18.0.6:80 (real servers at runtime, no reload)",
        "remove api/198.18.0.6:80 (real servers at runtime, no reload)",
        "set weight of web/198.18.0.4:80 to 3 (runtime, no reload)",
        "set web/198.18.0.4:80 disabled (runtime, no reload)",
    ]
