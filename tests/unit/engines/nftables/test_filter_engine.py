"""engines/nftables/filter.py with a fake Runner that plays nft and ip.

What the filter engine must do: no nft call at all while nothing is filtered (a machine with
l7 services only may have no nftables); the whole table when the filtering's structure
changes; the changed sets only when a list's entries do; nothing when nothing changed; the
DSR device from the VIP's place; its share converges (the planner has nothing more to do).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from bascule.engines.nftables.filter import FilterEngine
from bascule.model import parse_document
from bascule.net.shell import Completed
from bascule.reconcile.actions import ReplaceConfig
from bascule.reconcile.planner import Observed, plan_engine


class FakeNft:
    def __init__(self) -> None:
        self.table = False
        self.sent: list[dict[str, Any]] = []
        self.calls: list[str] = []

    async def __call__(self, argv: Sequence[str], stdin: str | None) -> Completed:
        line = " ".join(argv)
        self.calls.append(line)
        if line == "nft -j list tables inet":
            tables = [{"table": {"family": "inet", "name": "bascule_filter"}}] if self.table else []
            return Completed(returncode=0, stdout=json.dumps({"nftables": tables}), stderr="")
        if line == "nft -j -f -":
            document = json.loads(stdin or "{}")
            self.sent.append(document)
            for command in document["nftables"]:
                if "delete" in command and "table" in command["delete"]:
                    self.table = False
                if "add" in command and "table" in command["add"]:
                    self.table = True
            return Completed(returncode=0, stdout="", stderr="")
        if line.startswith("ip -j route get"):
            route = [{"dst": argv[-1], "dev": "eth7", "prefsrc": "198.18.0.2"}]
            return Completed(returncode=0, stdout=json.dumps(route), stderr="")
        return Completed(returncode=1, stdout="", stderr=f"unexpected: {line}")


def document(blocked: list[str], **service: Any) -> Any:
    return parse_document(
        {
            "access_lists": {"blocked": {"addresses": blocked}},
            "block": ["blocked"],
            "virtual_services": [
                {
                    "name": "fast",
                    "address": "198.18.0.101",
                    "port": 80,
                    "mode": "l4",
                    "forwarding": "dsr",
                    **service,
                }
            ],
        }
    )


def execute(engine: FilterEngine, config: Any) -> None:
    share = engine.share(config)
    asyncio.run(engine.execute((ReplaceConfig(config=share, reason="test"),), None))


def test_nothing_filtered_no_nft_write() -> None:
    nft = FakeNft()
    engine = FilterEngine(runner=nft)
    execute(engine, parse_document({"virtual_services": []}))
    assert nft.sent == []


def test_structure_then_sets_only_then_nothing() -> None:
    nft = FakeNft()
    engine = FilterEngine(runner=nft)
    execute(engine, document(["198.18.7.0/24"]))
    assert nft.table and len(nft.sent) == 1
    chains = [c["add"]["chain"] for c in nft.sent[0]["nftables"] if "chain" in c.get("add", {})]
    assert {"name": "ingress/eth7", "dev": "eth7"}.items() <= chains[-1].items()

    execute(engine, document(["198.18.7.0/24", "198.18.9.9"]))
    verbs = {
        (verb, kind) for c in nft.sent[1]["nftables"] for verb, body in c.items() for kind in body
    }
    assert verbs == {("flush", "set"), ("add", "element")}

    execute(engine, document(["198.18.7.0/24", "198.18.9.9"]))
    assert len(nft.sent) == 2  # nothing changed: no nft call

    execute(engine, document(["198.18.7.0/24"], port=81))
    assert any("delete" in c for c in nft.sent[2]["nftables"])  # the table replaced

    execute(engine, parse_document({"virtual_services": []}))
    assert not nft.table


def test_the_share_converges_and_has_no_real_servers() -> None:
    nft = FakeNft()
    engine = FilterEngine(runner=nft)
    config = document(["198.18.7.0/24"], real_servers=[{"address": "198.18.0.11", "port": 80}])
    share = engine.share(config)
    assert share.virtual_services[0].real_servers == []
    execute(engine, config)
    observation = asyncio.run(engine.observe(share))
    assert observation.running
    observed = Observed(applied=share, servers=observation.runtime())
    assert plan_engine(share, observed, max_weight=engine.max_weight).actions == ()
