"""Forms of the WUI: what a page asks for, how the posted strings become a document
fragment, and how the service layer's field errors come back beside the right input.

A form is a tuple of ``Field`` values named by their model path (``port``,
``check.interval``). ``parse`` turns the posted strings into the nested mapping the model
expects (numbers as integers, empty optional fields as null, unchecked boxes as false); the
model, not the form, decides what is valid. ``errors_for`` maps the ``FieldError`` paths of an
``InvalidConfiguration`` (``virtual_services[3].real_servers[0].weight``) to the form's field
names relative to the object the form edits, and keeps the rest as general messages.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from starlette.datastructures import FormData

from bascule.errors import FieldError, InvalidConfiguration

Kind = Literal["text", "number", "select", "checkbox", "list", "multi"]


@dataclass(frozen=True, kw_only=True)
class Field:
    """One input: ``name`` is the model path, dotted for nested fields (``check.path``)."""

    name: str
    label: str
    kind: Kind = "text"
    choices: tuple[tuple[str, str], ...] = ()  # (value, label) for selects and multi
    optional: bool = False  # empty means null (the model's default)
    help: str = ""

    @property
    def input_kind(self) -> str:
        """The macro's kind (macros.html): a list is typed as text, comma-separated."""
        return "text" if self.kind == "list" else self.kind


def choices(
    values: type[enum.StrEnum], *, default: str | None = None
) -> tuple[tuple[str, str], ...]:
    """Select options from an enum; ``default`` adds a first empty option with that label."""
    options = tuple((v.value, v.value.replace("_", " ")) for v in values)
    return ((("", default),) if default is not None else ()) + options


def parse(form: FormData | Mapping[str, Any], fields: Iterable[Field]) -> dict[str, Any]:
    """The posted values of ``fields`` as a nested document fragment.

    A field absent from the post (a disabled input, a field not shown) is left out, so an
    edit merges only what the form showed; a checkbox's absence means false, and a multiple
    choice's (ticked boxes of one name) means none.
    """
    data: dict[str, Any] = {}
    for field in fields:
        raw = form.get(field.name)
        if field.kind == "checkbox":
            value: Any = raw is not None and raw != "false"
        elif field.kind == "multi":
            value = ticked(form, field.name)
        elif raw is None or not isinstance(raw, str):
            continue
        else:
            value = _convert(field, raw.strip())
            if value is _OMIT:
                continue
        _set(data, field.name, value)
    return data


_OMIT = object()
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_DECIMAL = re.compile(r"^-?[0-9]{1,9}\.[0-9]{1,6}$")  # seconds: check.interval=0.5


#: The hidden input that lists the fields a form showed (comma-separated names): a field the
#: form did not show is not changed, and a checkbox it showed but left unticked is false.
SHOWN = "_fields"


def ticked(form: FormData | Mapping[str, Any], name: str) -> list[str]:
    """The values posted under ``name`` (a multiple choice's ticked boxes)."""
    if isinstance(form, FormData):
        return [value for value in form.getlist(name) if isinstance(value, str) and value]
    raw = form.get(name)
    if isinstance(raw, str):
        return [raw] if raw else []
    return [str(value) for value in raw] if isinstance(raw, list | tuple) else []


def posted_fields(form: FormData | Mapping[str, Any], fields: Iterable[Field]) -> tuple[Field, ...]:
    """The ``fields`` the posted form showed (all of them when it does not say)."""
    fields = tuple(fields)
    listed = form.get(SHOWN)
    if not isinstance(listed, str):
        return fields
    names = set(listed.split(","))
    return tuple(f for f in fields if f.name in names)


def typed_values(
    form: FormData | Mapping[str, Any], fields: Iterable[Field], base: Mapping[str, Any]
) -> dict[str, Any]:
    """The values to show a form again with: what was typed in the fields the form showed,
    ``base`` (the stored or default values) for the others."""
    shown = dict(base)
    for field in posted_fields(form, fields):
        raw = form.get(field.name)
        if field.kind == "checkbox":
            shown[field.name] = raw is not None and raw != "false"
        elif field.kind == "multi":
            shown[field.name] = ticked(form, field.name)
        elif isinstance(raw, str):
            shown[field.name] = raw
    return shown


def _convert(field: Field, text: str) -> Any:
    if not text:
        if field.kind == "list":
            return []
        return None if field.optional else _OMIT if field.kind == "select" else text
    if field.kind == "number":
        # not an integer: give the model the text, it says "must be an integer" beside it
        if _DECIMAL.match(text):
            return float(text)
        return int(text) if _INTEGER.match(text) and len(text) < 12 else text
    if field.kind == "list":
        items = [item.strip() for item in text.split(",") if item.strip()]
        return [int(item) if item.isdigit() and len(item) < 12 else item for item in items]
    return text


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    target = data
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def values(document: Mapping[str, Any], fields: Iterable[Field]) -> dict[str, Any]:
    """The current value of each field from a document fragment (to fill a form)."""
    result: dict[str, Any] = {}
    for field in fields:
        value: Any = document
        for part in field.name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if field.kind == "list" and isinstance(value, list):
            value = ", ".join(str(item) for item in value)
        result[field.name] = value
    return result


@dataclass(frozen=True, kw_only=True)
class FormErrors:
    """Errors to show: beside a field (by name) or above the form."""

    fields: dict[str, str]
    general: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)


NO_ERRORS = FormErrors(fields={})


def errors_for(
    exc: InvalidConfiguration, *, prefix: str, names: Iterable[str], relative_ok: bool = True
) -> FormErrors:
    """Map ``exc`` to the form whose object lives at ``prefix`` (``virtual_services[2]``).

    A path under ``prefix`` naming one of ``names`` (or a part inside it, like
    ``extra_ports[1]``) goes beside that field; an edit's own errors carry a path relative to
    the object already (``name``, ``address``) and go beside the field too when
    ``relative_ok``; everything else is a general message that still names its path.
    """
    known = set(names)
    fields: dict[str, str] = {}
    general: list[str] = []
    for error in exc.errors:
        name = _field_of(error, prefix, known, relative_ok)
        if name is None:
            general.append(_plain(error))
        elif name in fields:
            fields[name] = f"{fields[name]}; {error.message}"
        else:
            fields[name] = error.message
    return FormErrors(fields=fields, general=tuple(general))


def _field_of(error: FieldError, prefix: str, known: set[str], relative_ok: bool) -> str | None:
    path = error.path
    if path.startswith(prefix + "."):
        path = path[len(prefix) + 1 :]
    elif not (relative_ok and path and not path.startswith("virtual_services")):
        return None
    # a form whose inputs are rows of a list names them with their index
    # ("request_headers[2].value"); otherwise "extra_ports[1]" belongs to "extra_ports" and
    # "check.headers.X-A" to the nearest known name
    indexed = path
    while "[" in indexed:
        if indexed in known:
            return indexed
        indexed = indexed.rpartition(".")[0]
    path = re.sub(r"\[\d+\]", "", path)
    while path:
        if path in known:
            return path
        path = path.rpartition(".")[0]
    return None


def _plain(error: FieldError) -> str:
    """A general message: the path in words where there is one."""
    if not error.path:
        return error.message
    where = re.sub(r"virtual_services\[(\d+)\]", r"virtual service #\1", error.path)
    return f"{where}: {error.message}"
