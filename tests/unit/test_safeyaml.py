"""The one YAML loader of every door (finding 9 and 7): no aliases (the billion laughs), no
nesting deeper than MAX_DEPTH (RecursionError), and YAML errors that name the line."""

from __future__ import annotations

import pytest
import yaml
from hostile_documents import BILLION_LAUGHS, DEEP_YAML

from bascule import safeyaml


def test_aliases_are_refused_where_they_are() -> None:
    with pytest.raises(yaml.MarkedYAMLError) as refused:
        safeyaml.load(BILLION_LAUGHS)
    assert refused.value.problem == "aliases (*name) are not accepted"
    assert refused.value.problem_mark is not None and refused.value.problem_mark.line == 1


def test_a_merge_key_needs_an_alias_and_is_refused() -> None:
    with pytest.raises(yaml.MarkedYAMLError, match="aliases"):
        safeyaml.load("base: &base {port: 80}\nweb:\n  <<: *base\n")


@pytest.mark.parametrize("text", ["[" * 100_000, DEEP_YAML])
def test_deep_nesting_is_refused_not_a_recursion_error(text: str) -> None:
    with pytest.raises(yaml.YAMLError) as refused:
        safeyaml.load(text)
    assert not isinstance(refused.value.__context__, RecursionError)


def test_ordinary_documents_load() -> None:
    text = "virtual_services:\n  - name: web\n    port: 80\n    extra_ports: [8080]\n"
    assert safeyaml.load(text) == {
        "virtual_services": [{"name": "web", "port": 80, "extra_ports": [8080]}]
    }
    assert safeyaml.load("anchored: &only 1\n") == {"anchored": 1}  # an anchor alone is fine
    assert safeyaml.load('{"json": [1, 2]}') == {"json": [1, 2]}
