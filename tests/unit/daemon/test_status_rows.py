"""ServiceRows and the status route's JSON: a report after a change builds and encodes only
the services whose inputs changed, and says exactly what a report built whole says."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bascule.api.routes.status import _Answer
from bascule.api.schemas import StatusOut, VirtualServiceStatusOut
from bascule.daemon.status import ServiceRows, build_status
from bascule.engines.base import EngineObservation, Health, ServerObservation
from bascule.model import Configuration, RealServerState, parse_document
from bascule.reconcile.planner import WeightOverride


def configuration(*weights: int) -> Configuration:
    return parse_document(
        {
            "virtual_services": [
                {
                    "name": f"vs{index}",
                    "address": "198.18.0.100",
                    "port": 8000 + index,
                    "real_servers": [{"address": f"198.18.1.{index}", "port": 80, "weight": w}],
                }
                for index, w in enumerate(weights)
            ]
        }
    )


def observation(health: str = "up") -> EngineObservation:
    servers = {
        (f"vs{index}", f"198.18.1.{index}:80"): ServerObservation(
            weight=1, state=RealServerState.enabled, health=Health(health)
        )
        for index in range(3)
    }
    return EngineObservation(running=True, servers=servers)


def report(config: Configuration, seen: EngineObservation, rows: ServiceRows, **more: Any) -> Any:
    return build_status(
        config,
        seen,
        revision=1,
        applied_revision=1,
        apply_ok=True,
        apply_message="",
        engine={"fake": {"virtual_services": []}},
        rows=rows,
        **more,
    )


def test_a_row_is_built_again_only_when_its_inputs_change() -> None:
    rows, config, seen = ServiceRows(), configuration(1, 1, 1), observation()
    first = report(config, seen, rows)
    assert all(
        a is b
        for a, b in zip(
            first.virtual_services, report(config, seen, rows).virtual_services, strict=True
        )
    )

    # a weight change of vs1 (the operate path shares vs0 and vs2 with the revision before)
    changed = config.virtual_services[1].model_copy(
        update={
            "real_servers": [
                config.virtual_services[1].real_servers[0].model_copy(update={"weight": 5})
            ]
        }
    )
    edited = config.model_copy(
        update={
            "virtual_services": [config.virtual_services[0], changed, config.virtual_services[2]]
        }
    )
    after = report(edited, seen, rows)
    same = [a is b for a, b in zip(first.virtual_services, after.virtual_services, strict=True)]
    assert same == [True, False, True]
    assert after.virtual_services[1].real_servers[0].weight == 5

    # a new reading, an apply outcome or a service's override: rebuilt where it matters
    fresh = report(edited, observation("down"), rows)
    assert not any(
        a is b for a, b in zip(after.virtual_services, fresh.virtual_services, strict=True)
    )
    assert {rs.status for vs in fresh.virtual_services for rs in vs.real_servers} == {"down"}
    override = {("vs2", "198.18.1.2:80"): WeightOverride(weight=3, reason="agent")}
    again = report(edited, observation("down"), rows, overrides=override)
    assert again.virtual_services[2].real_servers[0].effective_weight == 3
    # a new reading that reads the same of a service keeps its row (and so its JSON)
    assert again.virtual_services[0] is fresh.virtual_services[0]


def test_a_new_reading_rebuilds_the_rows_of_what_it_saw_move() -> None:
    rows, config = ServiceRows(), configuration(1, 1, 1)
    first = report(config, observation(), rows)
    seen = observation()
    busy = dataclasses.replace(
        seen.servers[("vs2", "198.18.1.2:80")], total_connections=7, current_connections=1
    )
    moved = EngineObservation(
        running=True, servers={**seen.servers, ("vs2", "198.18.1.2:80"): busy}
    )
    second = report(config, moved, rows)
    same = [a is b for a, b in zip(first.virtual_services, second.virtual_services, strict=True)]
    assert same == [True, True, False]
    assert second.virtual_services[2].real_servers[0].total_connections == 7
    assert second == report(config, moved, ServiceRows())  # what a report built whole says
    stopped = report(config, EngineObservation(running=False, detail="stopped"), rows)
    assert {vs.message for vs in stopped.virtual_services} == {"stopped"}


def test_rows_of_services_that_left_are_forgotten() -> None:
    rows, seen = ServiceRows(), observation()
    report(configuration(1, 1, 1), seen, rows)
    report(configuration(1), seen, rows)
    assert set(rows._rows) == {"vs0"}


@pytest.mark.parametrize("message", ["", 'with "virtual_services":[] in it'])
def test_the_answer_is_the_whole_report_encoded(message: str) -> None:
    rows, config, seen = ServiceRows(), configuration(1, 2, 3), observation()
    first = report(config, seen, rows)
    first = dataclasses.replace(first, apply_message=message)
    answer = _Answer()
    assert answer.of(first) == StatusOut.model_validate(first).model_dump_json().encode()
    assert answer.of(first) is answer.of(first)

    encoded: list[str] = []
    original = VirtualServiceStatusOut.model_validate

    def counted(row: Any, **kwargs: Any) -> VirtualServiceStatusOut:
        encoded.append(row.name)
        return original(row, **kwargs)

    second = dataclasses.replace(
        first,
        revision=2,
        virtual_services=(
            first.virtual_services[0],
            dataclasses.replace(first.virtual_services[1], up=0),
            first.virtual_services[2],
        ),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(VirtualServiceStatusOut, "model_validate", counted)
        body = answer.of(second)
    assert encoded == ["vs1"]  # the two others' JSON is the one made before
    assert body == StatusOut.model_validate(second).model_dump_json().encode()

    # kept as places in the answer before: a longer outline and a longer row move the rest
    third = dataclasses.replace(
        second,
        apply_message=message + " and now a longer message",
        virtual_services=(
            second.virtual_services[0],
            dataclasses.replace(second.virtual_services[1], message="a longer row than before"),
            second.virtual_services[2],
        ),
    )
    encoded.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(VirtualServiceStatusOut, "model_validate", counted)
        body = answer.of(third)
        fourth = dataclasses.replace(third, revision=3)
        again = answer.of(fourth)
    assert encoded == ["vs1"]
    assert body == StatusOut.model_validate(third).model_dump_json().encode()
    assert again == StatusOut.model_validate(fourth).model_dump_json().encode()


def test_the_answer_outlives_its_report_while_its_rows_do() -> None:
    rows, seen = ServiceRows(), observation()
    config = configuration(1, 2, 3)
    answer = _Answer()
    answer.of(report(config, seen, rows))  # (the report is dropped at once, as is the route's)
    encoded: list[str] = []
    original = VirtualServiceStatusOut.model_validate

    def counted(row: Any, **kwargs: Any) -> VirtualServiceStatusOut:
        encoded.append(row.name)
        return original(row, **kwargs)

    changed = configuration(1, 5, 3)
    changed = changed.model_copy(
        update={
            "virtual_services": (
                config.virtual_services[0],
                changed.virtual_services[1],
                config.virtual_services[2],
            )
        }
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(VirtualServiceStatusOut, "model_validate", counted)
        second = report(changed, seen, rows)  # the rows of vs0 and vs2 are ServiceRows' own
        body = answer.of(second)
    assert encoded == ["vs1"]
    assert body == StatusOut.model_validate(second).model_dump_json().encode()


def test_the_answer_is_forgotten_once_its_rows_are_gone() -> None:
    rows = ServiceRows()
    answer = _Answer()
    answer.of(report(configuration(1, 2), observation(), rows))
    assert answer._last is not None
    report(configuration(1, 2), observation("down"), rows)  # a new reading: every row anew
    assert answer._last is None
    assert answer._rows == {}
