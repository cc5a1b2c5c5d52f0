"""The difference between two configuration documents, as values.

Sits between the model and the store in the flow of a change: when a revision is committed the
store records ``diff_documents(head, new)`` beside it, and the WUI, the API and the CLI show
``format_diff`` of it to a person. Pure: no I/O, no clock.

Documents are JSON trees. Paths name what changed and stay stable when unrelated parts move:

- mapping keys are joined with dots: ``virtual_services[web].check.interval``; a key that is not
  a plain identifier is quoted as a JSON string: ``check.headers["X-Forwarded.For"]``;
- virtual services are matched by ``name`` and real servers by ``address:port``, never by index,
  so inserting one service does not show every later one as changed:
  ``virtual_services[web].real_servers[198.18.0.4:80].weight``. The order of these lists is not
  part of the configuration and is not reported;
- any other list (``extra_ports``, ``headers``...) is compared as one value, and so is a keyed
  list whose items cannot be keyed (an item without its key, or two items with the same key).

Comparison is JSON-exact: ``1``, ``1.0`` and ``true`` differ; mapping key order does not count.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from bascule.errors import BasculeError
from bascule.model.schema import FIELD as SCHEMA_FIELD

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"

#: Lists matched item by item, by the field under which they appear -> the item's key fields.
KEYED_LISTS: Mapping[str, tuple[str, ...]] = {
    "virtual_services": ("name",),
    "real_servers": ("address", "port"),
}

_PLAIN_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PLAIN_ITEM_KEY = re.compile(r"[A-Za-z0-9_.:-]+")


class DiffOp(enum.Enum):
    """What happened at a path."""

    ADD = "add"
    REMOVE = "remove"
    CHANGE = "change"


@dataclass(frozen=True, kw_only=True)
class DiffItem:
    """One difference: ``old`` is ``None`` for an ADD, ``new`` is ``None`` for a REMOVE."""

    op: DiffOp
    path: str
    old: JsonValue | None
    new: JsonValue | None


class DiffDoesNotApply(BasculeError):
    """A diff was applied to a document it was not computed from."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{path or '<document>'}: {reason}")


# -- computing ------------------------------------------------------------------------------


def diff_documents(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], *, share: bool = False
) -> tuple[DiffItem, ...]:
    """The changes that turn ``old`` into ``new`` (``None`` is the empty document).

    Items come in document order: for each mapping or keyed list, what ``old`` holds (removed or
    changed) first, then what only ``new`` holds. Raises ``TypeError`` or ``ValueError`` when a
    document is not a JSON tree (a non-string key, a set, a NaN...). The items' values are
    copies; ``share``: they may be the documents' own dicts and lists, for a caller that never
    changes either document (the change pipeline's: the first apply of 10,000 servers is one
    ADD of the whole list, and its copy stayed alive with the head revision, issue 15).
    """
    # The schema version is the document's shape, not its content (model/schema.py): a
    # document read forward from an older version differs from it in nothing a person changed.
    old_tree = _normalize(_without_version({} if old is None else old), "", share=share)
    new_tree = _normalize(_without_version(new), "", share=share)
    items: list[DiffItem] = []
    _diff_value("", None, old_tree, new_tree, items)
    return tuple(items)


def _without_version(document: Mapping[str, Any]) -> Mapping[str, Any]:
    if SCHEMA_FIELD not in document:
        return document
    return {key: value for key, value in document.items() if key != SCHEMA_FIELD}


def _diff_value(path: str, field: str | None, old: Any, new: Any, out: list[DiffItem]) -> None:
    if _same(old, new):
        return
    if isinstance(old, dict) and isinstance(new, dict):
        _diff_mapping(path, old, new, out)
        return
    fields = _keyed_fields(field)
    if isinstance(old, list) and isinstance(new, list) and fields is not None:
        old_index = _index_items(old, fields)
        new_index = _index_items(new, fields)
        if old_index is not None and new_index is not None:
            _diff_keyed(path, old_index, new_index, out)
            return
    out.append(DiffItem(op=DiffOp.CHANGE, path=path, old=old, new=new))


def _diff_mapping(path: str, old: dict[str, Any], new: dict[str, Any], out: list[DiffItem]) -> None:
    for key, old_value in old.items():
        child = _field_path(path, key)
        if key in new:
            _diff_value(child, key, old_value, new[key], out)
        else:
            out.append(DiffItem(op=DiffOp.REMOVE, path=child, old=old_value, new=None))
    for key, new_value in new.items():
        if key not in old:
            child = _field_path(path, key)
            out.append(DiffItem(op=DiffOp.ADD, path=child, old=None, new=new_value))


def _diff_keyed(path: str, old: dict[str, Any], new: dict[str, Any], out: list[DiffItem]) -> None:
    for key, old_item in old.items():
        child = _item_path(path, key)
        if key in new:
            _diff_value(child, None, old_item, new[key], out)
        else:
            out.append(DiffItem(op=DiffOp.REMOVE, path=child, old=old_item, new=None))
    for key, new_item in new.items():
        if key not in old:
            out.append(DiffItem(op=DiffOp.ADD, path=_item_path(path, key), old=None, new=new_item))


def _keyed_fields(field: str | None) -> tuple[str, ...] | None:
    return None if field is None else KEYED_LISTS.get(field)


def item_key(item: Any, fields: Sequence[str]) -> str | None:
    """The key of one item of a keyed list (``web``, ``198.18.0.4:80``), or ``None``."""
    if not isinstance(item, Mapping):
        return None
    parts: list[str] = []
    for name in fields:
        value = item.get(name)
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            parts.append(str(value))
        else:
            return None
    return ":".join(parts)


def _index_items(items: list[Any], fields: Sequence[str]) -> dict[str, Any] | None:
    """Items by key, in list order; ``None`` when some item has no key or keys repeat."""
    index: dict[str, Any] = {}
    for item in items:
        key = item_key(item, fields)
        if key is None or key in index:
            return None
        index[key] = item
    return index


def _same(a: Any, b: Any) -> bool:
    """JSON equality: unlike ``==``, ``1``, ``1.0`` and ``True`` all differ."""
    if a is b:  # a tree shares what two documents have in common (NaN is refused before)
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(value, b[key]) for key, value in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _normalize(value: Any, path: str, *, share: bool = False) -> Any:
    """A fresh copy of a JSON tree as dicts, lists and scalars; rejects anything else.
    ``share``: the tree itself where it is made of dicts and lists already, a copy only of
    its other mappings and sequences.

    The copy is made without building paths (most of the cost on a large document); only when
    something is rejected is the tree walked again to name where.
    """
    try:
        return _shared_json(value) if share else _copy_json(value)
    except (TypeError, ValueError):
        return _normalize_naming(value, path)


def _shared_json(value: Any) -> Any:
    """``_copy_json`` that keeps every dict and list whose children it keeps."""
    kind = type(value)
    if kind is dict:
        copy: dict[str, Any] | None = None
        for key, child in value.items():
            if not isinstance(key, str):
                raise TypeError
            shared = _shared_json(child)
            if shared is not child:
                copy = dict(value) if copy is None else copy
                copy[key] = shared
        return value if copy is None else copy
    if kind is list:
        items: list[Any] | None = None
        for position, child in enumerate(value):
            shared = _shared_json(child)
            if shared is not child:
                items = list(value) if items is None else items
                items[position] = shared
        return value if items is None else items
    return _copy_json(value)


def _copy_json(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError
        return value
    if isinstance(value, Mapping):
        copy: dict[str, Any] = {}
        for key, child in value.items():
            if not isinstance(key, str):
                raise TypeError
            copy[key] = _copy_json(child)
        return copy
    if isinstance(value, list | tuple):
        return [_copy_json(child) for child in value]
    raise TypeError


def _normalize_naming(value: Any, path: str) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path or '<document>'}: {value} is not a JSON number")
        return value
    if isinstance(value, Mapping):
        copy: dict[str, Any] = {}
        for key, child in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path or '<document>'}: key {key!r} is not a string")
            copy[key] = _normalize_naming(child, _field_path(path, key))
        return copy
    if isinstance(value, list | tuple):
        return [_normalize_naming(child, f"{path}[{i}]") for i, child in enumerate(value)]
    raise TypeError(f"{path or '<document>'}: {type(value).__name__} is not a JSON value")


# -- paths ----------------------------------------------------------------------------------


def _field_path(parent: str, key: str) -> str:
    if _PLAIN_FIELD.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


def _item_path(parent: str, key: str) -> str:
    if _PLAIN_ITEM_KEY.fullmatch(key):
        return f"{parent}[{key}]"
    return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


def parse_path(path: str) -> tuple[str, ...]:
    """The segments of a diff path: ``a.b[web]["x y"]`` -> ``("a", "b", "web", "x y")``."""
    segments: list[str] = []
    position = 0
    decoder = json.JSONDecoder()
    while position < len(path):
        char = path[position]
        if char == "[":
            if path.startswith('"', position + 1):
                key, end = decoder.raw_decode(path, position + 1)
                if not isinstance(key, str) or not path.startswith("]", end):
                    raise ValueError(f"bad quoted segment in path {path!r}")
                segments.append(key)
                position = end + 1
            else:
                end = path.find("]", position)
                if end <= position + 1:
                    raise ValueError(f"bad segment in path {path!r}")
                segments.append(path[position + 1 : end])
                position = end + 1
        else:
            if char == ".":
                if not segments:
                    raise ValueError(f"path {path!r} starts with a dot")
                position += 1
            elif segments:
                raise ValueError(f"missing dot at {position} in path {path!r}")
            match = _PLAIN_FIELD.match(path, position)
            if match is None:
                raise ValueError(f"bad field at {position} in path {path!r}")
            segments.append(match.group())
            position = match.end()
    return tuple(segments)


# -- applying -------------------------------------------------------------------------------


def apply_diff(document: Mapping[str, Any] | None, items: Iterable[DiffItem]) -> dict[str, Any]:
    """A copy of ``document`` with ``items`` applied; the inverse of ``diff_documents``.

    Each item is checked against the document (what a REMOVE or CHANGE names must hold its
    ``old`` value, what an ADD names must be absent) and ``DiffDoesNotApply`` is raised
    otherwise, so a diff can be replayed safely onto a document it was not computed from.
    Added list items are appended: ``apply_diff(a, diff_documents(a, b))`` equals ``b`` up to
    the order of virtual services and real servers.
    """
    result: dict[str, Any] = _normalize({} if document is None else document, "")
    for item in items:
        _apply_item(result, item)
    return result


def _apply_item(root: dict[str, Any], item: DiffItem) -> None:
    try:
        segments = parse_path(item.path)
    except ValueError as exc:
        raise DiffDoesNotApply(item.path, str(exc)) from exc
    if not segments:
        raise DiffDoesNotApply(item.path, "empty path")
    container: Any = root
    field: str | None = None
    for segment in segments[:-1]:
        container, field = _child(container, field, segment, item.path)
    last = segments[-1]
    fields = _keyed_fields(field)
    if isinstance(container, dict):
        _apply_in_mapping(container, last, item)
    elif isinstance(container, list) and fields is not None:
        _apply_in_list(container, fields, last, item)
    else:
        raise DiffDoesNotApply(item.path, "the parent is not a mapping or a keyed list")


def _child(container: Any, field: str | None, segment: str, path: str) -> tuple[Any, str | None]:
    if isinstance(container, dict):
        if segment not in container:
            raise DiffDoesNotApply(path, f"no {segment!r} in the document")
        return container[segment], segment
    fields = _keyed_fields(field)
    if isinstance(container, list) and fields is not None:
        position = _find(container, fields, segment)
        if position is None:
            raise DiffDoesNotApply(path, f"no item {segment!r} in {field}")
        return container[position], None
    raise DiffDoesNotApply(path, f"cannot descend into {type(container).__name__}")


def _find(items: list[Any], fields: Sequence[str], key: str) -> int | None:
    for position, candidate in enumerate(items):
        if item_key(candidate, fields) == key:
            return position
    return None


def _apply_in_mapping(mapping: dict[str, Any], key: str, item: DiffItem) -> None:
    if item.op is DiffOp.ADD:
        if key in mapping:
            raise DiffDoesNotApply(item.path, "already present")
        mapping[key] = _normalize(item.new, item.path)
        return
    if key not in mapping:
        raise DiffDoesNotApply(item.path, "not present")
    if not _same(mapping[key], _normalize(item.old, item.path)):
        raise DiffDoesNotApply(item.path, "holds another value than the diff's old one")
    if item.op is DiffOp.REMOVE:
        del mapping[key]
    else:
        mapping[key] = _normalize(item.new, item.path)


def _apply_in_list(items: list[Any], fields: Sequence[str], key: str, item: DiffItem) -> None:
    position = _find(items, fields, key)
    if item.op is DiffOp.ADD:
        if position is not None:
            raise DiffDoesNotApply(item.path, "already present")
        if item_key(item.new, fields) != key:
            raise DiffDoesNotApply(item.path, "the added item's key does not match the path")
        items.append(_normalize(item.new, item.path))
        return
    if position is None:
        raise DiffDoesNotApply(item.path, "not present")
    if not _same(items[position], _normalize(item.old, item.path)):
        raise DiffDoesNotApply(item.path, "holds another value than the diff's old one")
    if item.op is DiffOp.REMOVE:
        del items[position]
    else:
        if item_key(item.new, fields) != key:
            raise DiffDoesNotApply(item.path, "the changed item's key does not match the path")
        items[position] = _normalize(item.new, item.path)


# -- presenting and serializing -------------------------------------------------------------


def format_diff(items: Iterable[DiffItem]) -> str:
    """A readable text, one line per item: ``+ path: new``, ``- path: old``, ``~ path: a -> b``.

    Values are compact JSON, so strings are quoted and ``null`` reads as JSON does. An empty
    diff formats as the empty string.
    """
    lines: list[str] = []
    for item in items:
        if item.op is DiffOp.ADD:
            lines.append(f"+ {item.path}: {_show(item.new)}")
        elif item.op is DiffOp.REMOVE:
            lines.append(f"- {item.path}: {_show(item.old)}")
        else:
            lines.append(f"~ {item.path}: {_show(item.old)} -> {_show(item.new)}")
    return "\n".join(lines)


def _show(value: JsonValue | None) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def diff_to_json(items: Iterable[DiffItem]) -> list[dict[str, Any]]:
    """Plain JSON objects ``{"op", "path", "old", "new"}``, for the API and the store."""
    return [
        {"op": item.op.value, "path": item.path, "old": item.old, "new": item.new} for item in items
    ]


def diff_from_json(data: Any) -> tuple[DiffItem, ...]:
    """The inverse of ``diff_to_json``; raises ``ValueError`` on anything else."""
    if not isinstance(data, list):
        raise ValueError("a diff is a JSON list")
    items: list[DiffItem] = []
    for position, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ValueError(f"diff item {position} is not an object")
        unknown = entry.keys() - {"op", "path", "old", "new"}
        if unknown:
            raise ValueError(f"diff item {position} has unknown fields {sorted(unknown)}")
        try:
            op = DiffOp(entry.get("op"))
        except ValueError as exc:
            raise ValueError(f"diff item {position} has a bad op {entry.get('op')!r}") from exc
        path = entry.get("path")
        if not isinstance(path, str):
            raise ValueError(f"diff item {position} has no string path")
        old = _normalize(entry.get("old"), path)
        new = _normalize(entry.get("new"), path)
        items.append(DiffItem(op=op, path=path, old=old, new=new))
    return tuple(items)
