"""reconcile/operations.py: an operation gives what the whole flow gives for the same edit."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.model import Configuration, RealServerState, edits, parse_document
from bascule.reconcile.actions import SetState
from bascule.reconcile.diff import diff_documents
from bascule.reconcile.operations import ServerOperation, operate, runtime_plan
from bascule.reconcile.planner import desired_runtime, runtime_actions


def rs(last: int, weight: int = 1000, **fields: Any) -> dict[str, Any]:
    return {"address": f"198.18.0.{last}", "port": 80, "weight": weight, **fields}


def head_document() -> dict[str, Any]:
    return parse_document(
        {
            "virtual_services": [
                {
                    "name": "web",
                    "address": "198.18.0.100",
                    "port": 80,
                    "scheduler": "weighted_round_robin",
                    "real_servers": [rs(4), rs(5, 500)],
                },
                {
                    "name": "site",
                    "address": "198.18.0.100",
                    "port": 81,
                    "type": "http",
                    "real_servers": [rs(4)],
                    "sub_services": [{"name": "api", "real_servers": [rs(6), rs(7)]}],
                    "rules": [
                        {
                            "name": "to-api",
                            "match": {"path_prefix": "/api"},
                            "action": {"use": "api"},
                        }
                    ],
                },
                {
                    "name": "fixed",
                    "address": "198.18.0.100",
                    "port": 82,
                    "scheduler": "fixed_weighting",
                    "real_servers": [rs(8, 2), rs(9, 1)],
                },
            ]
        }
    ).to_document()


OPERATIONS = [
    [ServerOperation(pool="web", key="198.18.0.4:80", changes={"weight": 250})],
    [ServerOperation(pool="web", key="198.18.0.5:80", changes={"state": "drain"})],
    [ServerOperation(pool="site/api", key="198.18.0.7:80", changes={"state": "disabled"})],
    [
        ServerOperation(pool="web", key="198.18.0.4:80", changes={"state": "drain"}),
        ServerOperation(pool="site", key="198.18.0.4:80", changes={"state": "drain"}),
    ],
    [ServerOperation(pool="fixed", key="198.18.0.8:80", changes={"state": "disabled"})],
]


@pytest.mark.parametrize("operations", OPERATIONS)
def test_an_operation_is_the_whole_flow_of_the_same_edit(
    operations: list[ServerOperation],
) -> None:
    document = head_document()
    config = parse_document(document)
    operated = operate(config, document, operations)
    assert operated is not None
    edited = edits.update_real_servers(
        document, [(op.pool, op.key, op.changes) for op in operations]
    )
    expected = parse_document(edited)
    assert operated.config == expected
    assert operated.document == expected.to_document()
    assert operated.diff == diff_documents(document, expected.to_document())
    assert document == head_document()  # the head's document is not changed


@pytest.mark.parametrize(
    "operation",
    [
        ServerOperation(pool="web", key="198.18.0.4:80", changes={"weight": 0}),  # invalid
        ServerOperation(pool="web", key="198.18.0.4:80", changes={"state": "asleep"}),
        ServerOperation(pool="web", key="198.18.0.4:80", changes={"critical": True}),
        ServerOperation(pool="web", key="198.18.0.99:80", changes={"weight": 2}),
        ServerOperation(pool="nope", key="198.18.0.4:80", changes={"weight": 2}),
        ServerOperation(pool="site/nope", key="198.18.0.4:80", changes={"weight": 2}),
        ServerOperation(pool="web", key="not a key", changes={"weight": 2}),
        ServerOperation(pool="fixed", key="198.18.0.8:80", changes={"weight": 5}),
    ],
)
def test_what_the_whole_flow_must_judge(operation: ServerOperation) -> None:
    document = head_document()
    assert operate(parse_document(document), document, [operation]) is None


def test_the_plan_covers_the_pool() -> None:
    document = head_document()
    config = parse_document(document)
    operated = operate(
        config,
        document,
        [
            ServerOperation(pool="web", key="198.18.0.5:80", changes={"weight": 1000}),
            ServerOperation(pool="site/api", key="198.18.0.6:80", changes={"state": "drain"}),
        ],
    )
    assert operated is not None
    assert [after.name for _, after in operated.pools] == ["web", "site/api"]
    actions = runtime_plan(operated.pools, max_weight=256)
    # what the whole planner sends an engine that runs the head
    wanted = desired_runtime(operated.config, max_weight=256)
    assert actions == tuple(runtime_actions(wanted, desired_runtime(config, max_weight=256)))
    assert SetState(vs="site/api", server="198.18.0.6:80", state=RealServerState.drain) in actions
    assert {action.vs for action in actions} == {"web", "site/api"}


def test_no_operation_is_not_an_operation() -> None:
    assert operate(Configuration(), Configuration().to_document(), []) is None
