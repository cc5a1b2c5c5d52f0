"""A document decoded from the store holds one object per equal string or integer."""

from __future__ import annotations

import json
from pathlib import Path

from bascule.store.revisions import RevisionStore


def test_a_decoded_head_shares_its_equal_values_and_reads_as_stored(tmp_path: Path) -> None:
    servers = [
        {"address": f"198.18.1.{i}", "port": 8080, "weight": 1000, "state": "enabled"}
        for i in range(1, 4)
    ]
    document = {
        "schema_version": 2,
        "virtual_services": [
            {"name": f"vs{i}", "port": 100000 + i, "real_servers": servers, "on": True}
            for i in range(2)
        ],
    }
    store = RevisionStore(tmp_path / "bascule.db")
    store.commit(document, base=None, author="t", message="m")
    again = RevisionStore(tmp_path / "bascule.db")  # a daemon that starts: decoded
    head = again.head()
    assert head is not None
    assert json.dumps(head.document) == json.dumps(document)
    decoded = [rs for vs in head.document["virtual_services"] for rs in vs["real_servers"]]
    assert len({id(rs["state"]) for rs in decoded}) == 1
    assert len({id(rs["weight"]) for rs in decoded}) == 1
    assert len({id(rs["port"]) for rs in decoded}) == 1
    assert [type(vs["on"]) for vs in head.document["virtual_services"]] == [bool, bool]
