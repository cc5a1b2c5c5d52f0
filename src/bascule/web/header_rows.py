"""The header operations editor of the service page: ``request_headers`` and
``response_headers``, ordered lists of set / add / delete / replace (model/rules.py
``HeaderOperation``).

Each operation is a row of inputs named by its place in the list
(``request_headers[2].name``, ``.op``, ``.value``, ``.regex``, ``.with``), so the model's field
errors (``virtual_services[0].request_headers[2].value``) land beside the input. A row shows
what its operation takes (a value for set and add, a regex and its replacement for replace);
adding, moving and deleting rows is done by the page's fields refresh (htmx, with what was
typed), and only the settings form's Preview saves them, with every other field: the
operations are posted whole and replace the stored list. Empty inputs are left out of the
operation, so the model, not the form, says what is missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from bascule.model.capabilities import HeaderOperationKind
from bascule.web.forms import SHOWN, FormErrors

#: The two lists, and how the page titles them.
HEADER_LISTS = (
    ("request_headers", "Request headers (to the real servers)"),
    ("response_headers", "Response headers (to the clients)"),
)
#: The hidden input of a refresh that adds, moves or deletes a row: ``<list>:<verb>[:<row>]``.
ROW_ACTION = "_rows"
OPERATION_CHOICES = tuple((kind.value, kind.value) for kind in HeaderOperationKind)
_PARTS = ("op", "name", "value", "regex", "with")


@dataclass(frozen=True, kw_only=True)
class HeaderRow:
    """One operation as the editor shows it (every input as text, possibly empty)."""

    op: str = HeaderOperationKind.set.value
    name: str = ""
    value: str = ""
    regex: str = ""
    with_: str = ""

    @property
    def kind(self) -> HeaderOperationKind:
        try:
            return HeaderOperationKind(self.op)
        except ValueError:
            return HeaderOperationKind.set

    @property
    def takes_value(self) -> bool:
        return self.kind.takes_value

    @property
    def takes_regex(self) -> bool:
        return self.kind.takes_regex


def stored_rows(stored: Mapping[str, Any], list_name: str) -> list[HeaderRow]:
    """The stored operations of ``list_name`` as rows."""
    rows = []
    for operation in stored.get(list_name) or []:
        if not isinstance(operation, Mapping):
            continue
        kind = next((k for k in HeaderOperationKind if operation.get(k.value) is not None), None)
        if kind is None:
            continue
        replacement = operation.get("with", operation.get("replacement"))
        rows.append(
            HeaderRow(
                op=kind.value,
                name=str(operation[kind.value]),
                value=_text(operation.get("value")),
                regex=_text(operation.get("regex")),
                with_=_text(replacement),
            )
        )
    return rows


def posted_rows(form: FormData | Mapping[str, Any], list_name: str) -> list[HeaderRow]:
    """The rows of ``list_name`` in a posted form, in the order of their indexes."""
    pattern = re.compile(rf"^{re.escape(list_name)}\[(\d{{1,4}})\]\.({'|'.join(_PARTS)})$")
    found: dict[int, dict[str, str]] = {}
    for key in form:
        matched = pattern.match(key)
        value = form.get(key)
        if matched and isinstance(value, str):
            part = "with_" if matched[2] == "with" else matched[2]
            found.setdefault(int(matched[1]), {})[part] = value.strip()
    return [HeaderRow(**found[index]) for index in sorted(found)]


def shown_lists(form: FormData | Mapping[str, Any]) -> tuple[str, ...]:
    """The lists whose editor the posted form showed."""
    listed = form.get(SHOWN)
    names = set(listed.split(",")) if isinstance(listed, str) else set()
    return tuple(name for name, _ in HEADER_LISTS if name in names)


def header_changes(form: FormData | Mapping[str, Any]) -> dict[str, Any]:
    """The operations of each list the form showed, as the document takes them."""
    return {name: operations(posted_rows(form, name)) for name in shown_lists(form)}


def operations(rows: Sequence[HeaderRow]) -> list[dict[str, Any]]:
    """Rows as ``HeaderOperation`` documents: each row's operation and what it takes."""
    result = []
    for row in rows:
        operation: dict[str, Any] = {row.kind.value: row.name}
        if row.takes_value and row.value:
            operation["value"] = row.value
        if row.takes_regex and row.regex:
            operation["regex"] = row.regex
        if row.takes_regex and row.with_:
            operation["with"] = row.with_
        result.append(operation)
    return result


def with_row_action(rows: dict[str, list[HeaderRow]], action: object) -> dict[str, list[HeaderRow]]:
    """``rows`` after the action a refresh asked for: ``request_headers:add``,
    ``request_headers:up:2``, ``:down:2`` or ``:delete:2`` (anything else: unchanged)."""
    if not isinstance(action, str):
        return rows
    list_name, _, rest = action.partition(":")
    verb, _, where = rest.partition(":")
    if list_name not in rows:
        return rows
    current = list(rows[list_name])
    index = int(where) if where.isdigit() else -1
    if verb == "add":
        current.append(HeaderRow())
    elif verb == "delete" and 0 <= index < len(current):
        del current[index]
    elif verb in ("up", "down"):
        other = index - 1 if verb == "up" else index + 1
        if 0 <= index < len(current) and 0 <= other < len(current):
            current[index], current[other] = current[other], current[index]
    return {**rows, list_name: current}


def error_names(rows: Mapping[str, Sequence[HeaderRow]]) -> list[str]:
    """Where the model's errors of the lists may land: each list, each row and its inputs
    (the operation's own key, ``request_headers[0].set``, is the row's header name)."""
    names = []
    for list_name, listed in rows.items():
        names.append(list_name)
        for index in range(len(listed)):
            row = f"{list_name}[{index}]"
            names += [row, *(f"{row}.{part}" for part in _PARTS)]
            names += [f"{row}.{kind.value}" for kind in HeaderOperationKind]
    return names


def row_errors(errors: FormErrors) -> FormErrors:
    """The errors of a whole row beside its operation, those of its key beside its name."""
    fields: dict[str, str] = {}
    for name, message in errors.fields.items():
        matched = re.fullmatch(r"((?:request|response)_headers\[\d+\])(?:\.(\w+))?", name)
        if matched:
            part = matched[2]
            if part is None:
                name = f"{matched[1]}.op"
            elif part in set(HeaderOperationKind):
                name = f"{matched[1]}.name"
        fields[name] = f"{fields[name]}; {message}" if name in fields else message
    return FormErrors(fields=fields, general=errors.general)


def _text(value: object) -> str:
    return "" if value is None else str(value)
