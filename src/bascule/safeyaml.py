"""YAML read safely: the one loader of every door that reads a YAML (or JSON) document.

Outside the layers, like ``errors``: the CLI (``bascule apply -f``, ``vs set key=value``) and
the daemon (a restored backup, through the API or the WUI) both read YAML with ``load`` and
nothing else, so a file refused by one is refused by all.

It is PyYAML's safe loader (no Python objects) with two more refusals, both raised as
``yaml.MarkedYAMLError`` with the line and column, like any other YAML error:

- **aliases** (``*name``): a configuration document never needs them, and aliases of aliases
  expand exponentially once the document is walked (the "billion laughs": a 1 KiB file that
  becomes gigabytes in the client's or the daemon's memory). Anchors alone are harmless;
  merge keys (``<<: *base``) need an alias and are refused with it;
- **nesting deeper than** ``MAX_DEPTH``: PyYAML composes a document recursively, so a file of
  100,000 ``[`` would end in RecursionError, an unhandled error (a 500) instead of an answer.
"""

from __future__ import annotations

from typing import Any

import yaml

#: The deepest nesting accepted (a configuration document has 5 levels).
MAX_DEPTH = 64


class _SafeLoader(yaml.SafeLoader):
    """The safe loader without aliases, and with a bounded depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark: yaml.error.Mark | None = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            raise yaml.MarkedYAMLError(
                problem="aliases (*name) are not accepted", problem_mark=mark
            )
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
    """The document in ``text``; ``yaml.YAMLError`` (usually a ``MarkedYAMLError``, with the
    line) if it is not YAML, or holds an alias, or nests too deep."""
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 (a SafeLoader)
