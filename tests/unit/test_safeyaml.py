"""The one YAML loader of every door (findings 9 and 7): aliases are ordinary YAML but their
expansion is bounded (the billion laughs), a document that contains itself is refused, and
nesting deeper than MAX_DEPTH is refused before PyYAML recurses into RecursionError."""

from __future__ import annotations

import pytest
import yaml
from hostile_documents import BILLION_LAUGHS, DEEP_YAML

from bascule import safeyaml


def test_a_billion_laughs_is_refused_before_anything_walks_it() -> None:
    with pytest.raises(yaml.MarkedYAMLError) as refused:
        safeyaml.load(BILLION_LAUGHS)
    assert refused.value.problem is not None
    assert f"expands to more than {safeyaml.MAX_VALUES} values" in refused.value.problem


def test_a_document_that_contains_itself_is_refused() -> None:
    with pytest.raises(yaml.MarkedYAMLError, match="contains itself"):
        safeyaml.load("a: &x [1, *x]\n")


def test_anchors_aliases_and_merge_keys_are_fine_within_the_bound() -> None:
    text = """\
base: &base {interval: 5, timeout: 2}
checks:
  - <<: *base
    type: http
  - *base
"""
    assert safeyaml.load(text)["checks"] == [
        {"interval": 5, "timeout": 2, "type": "http"},
        {"interval": 5, "timeout": 2},
    ]
    # what PyYAML itself writes for an object used twice
    shared = {"type": "tcp"}
    dumped = yaml.safe_dump({"a": shared, "b": shared})
    assert "&id001" in dumped and safeyaml.load(dumped) == {"a": shared, "b": shared}


def test_the_expanded_size_counts_each_use() -> None:
    leaf = [1, 2, 3]
    assert safeyaml.expanded_size({"a": leaf, "b": leaf}) == 1 + 2 * 4
    with pytest.raises(yaml.MarkedYAMLError):
        safeyaml.expanded_size({"a": leaf, "b": leaf}, limit=8)


@pytest.mark.parametrize("text", ["[" * 100_000, DEEP_YAML])
def test_deep_nesting_is_refused_not_a_recursion_error(text: str) -> None:
    with pytest.raises(yaml.MarkedYAMLError, match="nested deeper than"):
        safeyaml.load(text)


def test_ordinary_documents_load() -> None:
    text = "virtual_services:\n  - name: web\n    port: 80\n    extra_ports: [8080]\n"
    assert safeyaml.load(text) == {
        "virtual_services": [{"name": "web", "port": 80, "extra_ports": [8080]}]
    }
    assert safeyaml.load('{"json": [1, 2]}') == {"json": [1, 2]}
