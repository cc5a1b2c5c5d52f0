"""YAML read safely: the one loader of every door that reads a YAML (or JSON) document.

Outside the layers, like ``errors``: the CLI (``bascule apply -f``, ``vs set key=value``) and
the daemon (a restored backup, through the API or the WUI) both read YAML with ``load`` and
nothing else, so a file refused by one is refused by all.

It is PyYAML's safe loader (no Python objects), bounded two ways; a refusal is a
``yaml.MarkedYAMLError`` like any other YAML error (with the line where there is one):

- **the expansion of aliases**: anchors and aliases (``&base``, ``*base``, ``<<: *base``) are
  ordinary YAML, and PyYAML's own dumper writes them for an object used twice, so they are
  accepted; but the document *as expanded* may hold at most ``MAX_VALUES`` values. PyYAML
  shares an aliased object rather than copying it, so a "billion laughs" (nine aliases of
  nine aliases of ...) loads small and explodes only when something walks it: the CLI
  encoding it as JSON, the daemon validating it. The expanded size is counted on the shared
  objects, each once, before anything walks it; an alias of its own ancestor (a document
  that contains itself) is refused too;
- **nesting deeper than** ``MAX_DEPTH``: PyYAML composes a document recursively, so a file of
  100,000 ``[`` would end in RecursionError, an unhandled error (a 500) instead of an answer.
"""

from __future__ import annotations

from typing import Any

import yaml

#: The deepest nesting accepted (a configuration document has 5 levels).
MAX_DEPTH = 64
#: The most values a document may hold once its aliases are expanded (10,000 services hold
#: about 400,000; a 17 MiB JSON body could not hold many more).
MAX_VALUES = 2_000_000


class _SafeLoader(yaml.SafeLoader):
    """The safe loader with a bounded depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark: yaml.error.Mark | None = event.start_mark
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.MarkedYAMLError(
                    problem=f"the document is nested deeper than {MAX_DEPTH} levels",
                    problem_mark=mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load(text: str) -> Any:
    """The document in ``text``; ``yaml.YAMLError`` (a ``MarkedYAMLError``) if it is not YAML,
    nests too deep, or expands beyond ``MAX_VALUES`` values."""
    document = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 (a SafeLoader)
    expanded_size(document)
    return document


def expanded_size(document: Any, limit: int = MAX_VALUES) -> int:
    """How many values ``document`` holds with every shared object counted as often as it
    appears (each object's count computed once); MarkedYAMLError beyond ``limit`` or for a
    document that contains itself."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    pending: list[tuple[Any, bool]] = [(document, False)]
    while pending:
        value, children_done = pending.pop()
        if not isinstance(value, dict | list):
            continue
        key = id(value)
        children = list(value.values()) if isinstance(value, dict) else value
        containers = [child for child in children if isinstance(child, dict | list)]
        if children_done:
            open_.discard(key)
            size = 1 + len(children) - len(containers)
            size += sum(sizes[id(child)] for child in containers)
            if size > limit:
                raise yaml.MarkedYAMLError(
                    problem=f"the document expands to more than {limit} values (aliases of "
                    "aliases, a 'billion laughs'?)"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in open_:
            raise yaml.MarkedYAMLError(problem="the document contains itself (a recursive alias)")
        open_.add(key)
        pending.append((value, True))
        pending.extend((child, False) for child in containers if id(child) not in sizes)
    return sizes.get(id(document), 1)
