"""The configuration document as a whole: parsing, cross-object invariants, field errors.

``parse_document`` is the single entry point for every door. It validates each field
(pydantic), then the invariants that span objects (unique names, no port clashes between
services, unique real servers), then what each service's mode allows (``modes.py``) and what
SSL offload asks of it (``offload.py``), and reports *every* problem as a ``FieldError`` whose
path reads like ``virtual_services[0].real_servers[2].weight``.
"""

from __future__ import annotations

import enum
import functools
import itertools
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bascule.errors import FieldError, InvalidConfiguration
from bascule.model.authentication import authentication_errors
from bascule.model.caching import caching_errors
from bascule.model.capabilities import Mode, Protocol
from bascule.model.content import content_errors
from bascule.model.filtering import AccessList, filtering_errors
from bascule.model.high_availability import HighAvailability
from bascule.model.limits import exempt_names, limits_errors
from bascule.model.logging import Logging
from bascule.model.modes import mode_errors
from bascule.model.offload import offload_errors
from bascule.model.ports import port_clashes
from bascule.model.schema import SCHEMA_VERSION, migrate, newer_message, version_of
from bascule.model.sub_service import POOL_SEPARATOR
from bascule.model.types import Name
from bascule.model.virtual_service import VirtualService

#: The deepest nesting of mappings and lists a document may have (a real one has 5).
MAX_DEPTH = 32
#: The most problems one refusal reports (every one of 10,000 services may be wrong).
MAX_PROBLEMS = 200


class Configuration(BaseModel):
    """The whole desired state. Build it with ``parse_document`` so invariants are checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The shape of the document (model/schema.py); parse_document migrates older ones first.
    schema_version: int = SCHEMA_VERSION
    virtual_services: list[VirtualService] = Field(default_factory=list)
    # an active/standby pair (model/high_availability.py); None: a single node
    high_availability: HighAvailability | None = None
    logging: Logging | None = None
    # filtering by client address (model/filtering.py): named lists, and those dropped for
    # every VIP
    access_lists: dict[Name, AccessList] = Field(default_factory=dict)
    block: list[Name] = Field(default_factory=list)

    @field_validator("schema_version")
    @classmethod
    def _current(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            raise ValueError(newer_message(value))
        if value != SCHEMA_VERSION:
            raise ValueError(f"must be {SCHEMA_VERSION} (parse_document migrates older ones)")
        return value

    def virtual_service(self, name: str) -> VirtualService | None:
        return next((vs for vs in self.virtual_services if vs.name == name), None)

    def pools(self) -> tuple[VirtualService, ...]:
        """Every pool engines run: each service, then its sub-services' (``site/api``)."""
        return tuple(pool for vs in self.virtual_services for pool in vs.pools)

    def pool(self, name: str) -> VirtualService | None:
        """A service, or a sub-service's pool by its ``<service>/<sub-service>`` name."""
        service, _, sub_name = name.partition(POOL_SEPARATOR)
        vs = self.virtual_service(service)
        if vs is None or not sub_name:
            return vs
        sub = vs.sub_service(sub_name)
        return vs.pool(sub) if sub is not None else None

    def to_document(self) -> dict[str, Any]:
        """The JSON-ready document (every default spelled out), as ``bascule export`` shows;
        a single node's has no ``high_availability`` and a document without ``logging``,
        ``access_lists`` or ``block`` has none (their documents read as they always did)."""
        document = self.model_dump(mode="json")
        for vs, vs_document in zip(
            self.virtual_services, document["virtual_services"], strict=True
        ):
            _shared_dumps(vs, vs_document)
        if document.get("high_availability", ...) is None:
            del document["high_availability"]
        if document.get("logging") is None:
            document.pop("logging", None)
        for optional in ("access_lists", "block"):
            if not document.get(optional):
                document.pop(optional, None)
        return document


def for_mode(config: Configuration, mode: Mode) -> Configuration:
    """The services one kind of engine runs (HAProxy l7, nftables l4), as a configuration.

    A service's ``access`` is left out: the kernel's filter enforces it
    (``engines/nftables/filter.py``), so a change of it reloads neither engine; of the access
    lists, only those the services' ``limits`` exempt are in.

    The same ``config`` (a frozen model) gives the same share, the very object: a change
    plans and checks an engine's share, then installs it, and the engine keeps the text it
    rendered for that object (issue 15)."""
    for known, known_mode, share in _SHARES:
        if known is config and known_mode is mode:
            return share
    share = _for_mode(config, mode)
    _SHARES.insert(0, (config, mode, share))
    del _SHARES[_SHARES_KEPT:]
    return share


# The last shares ``for_mode`` made: (configuration, mode, share), newest first (threads may
# race on it: at worst a share is made twice).
_SHARES: list[tuple[Configuration, Mode, Configuration]] = []
# per mode, the change's and the head's (a change's plan compares the two: daemon/reconciler.py);
# the reconciler keeps both configurations anyway
_SHARES_KEPT = 4


def _for_mode(config: Configuration, mode: Mode) -> Configuration:
    services = [
        vs if vs.access is None else vs.model_copy(update={"access": None})
        for vs in config.virtual_services
        if vs.mode is mode
    ]
    exempt = {name for vs in services for name in exempt_names(vs)}
    return constructed(
        Configuration,
        schema_version=config.schema_version,
        virtual_services=services,
        logging=config.logging,
        access_lists={name: config.access_lists[name] for name in sorted(exempt)},
    )


_Model = typing.TypeVar("_Model", bound=BaseModel)


def constructed(kind: type[_Model], /, **fields: Any) -> _Model:
    """``kind.model_construct(**fields)``: a model of parts already validated (an engine's
    share of a document), the defaults of the fields not given filled in. Those with a
    default factory are called here: pydantic's ``model_construct`` asks each factory's
    signature at every call (``inspect.signature`` of ``list`` and ``dict``, parsed from
    their text signatures), 0.3 ms for an empty ``Configuration`` and 1.2 ms for a
    ``VirtualService``, each time a change plans an engine (issue 15)."""
    given = set(fields)
    for name, factory in _factories(kind):
        if name not in given:
            fields[name] = factory()
    return kind.model_construct(given, **fields)


@functools.cache
def _factories(kind: type[BaseModel]) -> tuple[tuple[str, Callable[[], Any]], ...]:
    """The fields of ``kind`` whose default is a factory of no argument, with it."""
    return tuple(
        (name, typing.cast(Callable[[], Any], field.default_factory))
        for name, field in kind.model_fields.items()
        if field.default_factory is not None and not field.default_factory_takes_validated_data
    )


def parse_document(
    data: Any, *, previous: tuple[Mapping[str, Any], Configuration] | None = None
) -> Configuration:
    """Validate a document (parsed YAML/JSON) and return it, or raise InvalidConfiguration.

    The work is bounded whatever the input: nesting deeper than ``MAX_DEPTH`` is refused before
    anything walks the document (recursion would otherwise end in RecursionError), port clashes
    are found in n log n (``ports.py``), and at most ``MAX_PROBLEMS`` problems are reported.

    ``previous`` (a document and the ``Configuration`` parsed from it) makes an edit cost what
    it changed: a service of ``data`` that *is* (the same object) one of the previous
    document's is taken as parsed then, not validated again; the rest, and every invariant
    that spans objects, is judged as always. The result and the errors are the same; at 1,000
    services of 10 servers it is ~70 ms instead of ~500 (issue 15). Edits share the services
    they leave alone (``edits.py``): nobody mutates a document in place."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidConfiguration(
            [FieldError(path="", message="the document must be a mapping with virtual_services")]
        )
    known = _parsed_services(data, previous)
    walked = data if not known else {**data, "virtual_services": _unknown(data, known)}
    deepest = nesting_depth(walked, MAX_DEPTH)
    if deepest > MAX_DEPTH:
        raise InvalidConfiguration(
            [FieldError(path="", message=f"the document is nested deeper than {MAX_DEPTH} levels")]
        )
    data = migrate(data)
    if known:
        services = data["virtual_services"]
        data = {
            **data,
            "virtual_services": [known.get(id(vs), vs) for vs in services],
        }
    try:
        config = Configuration.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfiguration(_bounded(_translate(exc))) from None
    problems = _bounded(
        itertools.chain(
            invariant_errors(config),
            mode_errors(config),
            offload_errors(config),
            content_errors(config),
            filtering_errors(config),
            limits_errors(config),
            caching_errors(config),
            authentication_errors(config),
        )
    )
    if problems:
        raise InvalidConfiguration(problems)
    _share_fields_sets(config, shared={id(vs) for vs in known.values()})
    return config


#: Per frozen model class, the sets of given field names its models share (None: a class
#: that is not frozen, whose models keep their own), and the fields that may hold models.
_FIELDS_SETS: dict[type[BaseModel], tuple[list[set[str]] | None, tuple[str, ...]]] = {}
#: How many combinations of one class are kept (a real document has a few).
_MAX_FIELDS_SETS = 32


def _share_fields_sets(config: Configuration, *, shared: set[int]) -> None:
    """Give every frozen model of ``config`` the one set of its class and combination of given
    fields (``model_fields_set``) instead of a set of its own.

    Pydantic keeps that set in each model: ~200 bytes for a real server given its address and
    port, ~700 with every field (a document read back from the store), 2 KB for a service;
    10,000 real servers held 3 to 10 MiB of sets that say the same few things (issue 15,
    docs/performance.md). A frozen model's set is never changed in place: pydantic refuses
    assignment to it and copies the set before ``model_copy(update=...)`` adds to it. The
    services in ``shared`` (ids: those of the previous configuration, done then) are skipped."""
    pending: list[Any] = [config]
    while pending:
        value = pending.pop()
        kind = type(value)
        known = _FIELDS_SETS.get(kind)
        if known is None:
            if kind is list or kind is tuple:
                pending.extend(value)
                continue
            if kind is dict:
                pending.extend(value.values())
                continue
            if not isinstance(value, BaseModel):
                continue  # a scalar
            known = _FIELDS_SETS[kind] = _model_class(kind)
        if id(value) in shared:
            continue
        sets, holders = known
        if sets is not None:
            given = value.__pydantic_fields_set__
            for one in sets:
                if one == given:
                    object.__setattr__(value, "__pydantic_fields_set__", one)
                    break
            else:
                if len(sets) < _MAX_FIELDS_SETS:
                    sets.append(given)
        if holders:
            fields = value.__dict__
            for name in holders:
                child = fields[name]
                if isinstance(child, BaseModel):
                    same = _equal_model(child)
                    if same is not child:
                        fields[name] = same  # done when it was parsed
                        continue
                pending.append(child)


#: Frozen models of plain values (scalars, enumerations, empty containers) parsed so far, by
#: class, given fields and values: a service's check or persistence is one object for every
#: service whose own is the same; and by ``id``, each of them with the document it was first
#: dumped to (None before), which the documents of the services that hold it share.
_EQUAL_MODELS: dict[tuple[Any, ...], BaseModel] = {}
_DUMPS: dict[int, tuple[BaseModel, Any]] = {}
#: How many are kept (a real document has a few kinds of check and persistence; a daemon
#: parses many documents in its life: the table starts again when full).
_MAX_EQUAL_MODELS = 256


def _equal_model(model: BaseModel) -> BaseModel:
    """The model parsed before that equals ``model`` (same class, given fields and values of
    the same types), or ``model`` itself: 1,000 services of the same check held 1,000 of
    them (0.9 MiB of checks and persistences at 1,000 services, their documents 0.8 MiB:
    issue 15). Only a frozen model of plain values: nothing in it can change."""
    if not model.model_config.get("frozen"):
        return model
    values: list[Any] = [type(model), frozenset(model.__pydantic_fields_set__)]
    for value in model.__dict__.values():
        kind = type(value)
        if kind is float:
            values.append(value.hex())  # -0.0 is not 0.0
        elif value is None or kind in (str, int, bool) or isinstance(value, enum.Enum):
            values.append((kind, value))  # 1 is not True
        elif kind in (dict, list) and not value:
            values.append(kind)
        else:
            return model
    key = tuple(values)
    known = _EQUAL_MODELS.get(key)
    if known is not None:
        return known
    if len(_EQUAL_MODELS) >= _MAX_EQUAL_MODELS:
        # parts of documents long gone, most of them: start again (what is shared stays so)
        _EQUAL_MODELS.clear()
        _DUMPS.clear()
    _EQUAL_MODELS[key] = model
    _DUMPS[id(model)] = (model, None)
    return model


def document_of(vs: VirtualService) -> dict[str, Any]:
    """``vs.model_dump(mode="json")``, with the documents of its parts shared between
    services (``_equal_model``) shared too."""
    return _shared_dumps(vs, vs.model_dump(mode="json"))


def _shared_dumps(vs: VirtualService, document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (``vs``'s dump), each part that is a model shared between services given
    the document it was first dumped to: one mapping for every service's same check (a
    document is never changed in place: edits copy what they change, model/edits.py)."""
    kind = type(vs)
    known_class = _FIELDS_SETS.get(kind)
    if known_class is None:
        known_class = _FIELDS_SETS[kind] = _model_class(kind)
    fields = vs.__dict__
    for name in known_class[1]:  # the fields that may hold a model
        value = fields[name]
        known = _DUMPS.get(id(value))
        if known is None or known[0] is not value:
            continue
        if known[1] is None:
            _DUMPS[id(value)] = (value, document[name])
        else:
            document[name] = known[1]
    return document


def _model_class(kind: type[BaseModel]) -> tuple[list[set[str]] | None, tuple[str, ...]]:
    """A model class's entry of ``_FIELDS_SETS``: no sets yet (None when not frozen), and its
    fields whose type is not a plain scalar."""
    holders = tuple(
        name for name, field in kind.model_fields.items() if _annotation_may_hold(field.annotation)
    )
    return ([] if kind.model_config.get("frozen") else None), holders


def _annotation_may_hold(annotation: Any) -> bool:
    if annotation in (str, int, float, bool, type(None)):
        return False
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _annotation_may_hold(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(_annotation_may_hold(arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return False
    # a model, a container, or a type not known here is walked; an enumeration is a scalar
    scalar = origin is None and isinstance(annotation, type) and issubclass(annotation, enum.Enum)
    return not scalar


def _parsed_services(
    data: Mapping[str, Any], previous: tuple[Mapping[str, Any], Configuration] | None
) -> dict[int, VirtualService]:
    """The services of ``data`` parsed already: ``id`` of the mapping -> its model."""
    if previous is None:
        return {}
    document, config = previous
    before, now = document.get("virtual_services"), data.get("virtual_services")
    if (
        not isinstance(before, list)
        or not isinstance(now, list)
        or len(before) != len(config.virtual_services)
        or version_of(data) != SCHEMA_VERSION
        or version_of(document) != SCHEMA_VERSION
    ):
        return {}
    shared = {id(vs) for vs in now}
    return {
        id(vs_doc): vs
        for vs_doc, vs in zip(before, config.virtual_services, strict=True)
        if id(vs_doc) in shared and isinstance(vs_doc, Mapping) and vs_doc.get("name") == vs.name
    }


def _unknown(data: Mapping[str, Any], known: Mapping[int, VirtualService]) -> list[Any]:
    return [vs for vs in data["virtual_services"] if id(vs) not in known]


def nesting_depth(data: Any, stop: int) -> int:
    """How deep ``data`` nests mappings and lists (a scalar is 0), counted without recursion;
    the walk stops once it is deeper than ``stop``."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, Mapping):
            children: Any = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > stop:
            return deepest
        # only containers go on the stack: a 100,000-entry access list is one step, not
        # 100,000 pushes of strings
        pending.extend(
            (child, depth + 1) for child in children if isinstance(child, Mapping | list | tuple)
        )
    return deepest


def _bounded(problems: Iterator[FieldError]) -> list[FieldError]:
    """At most ``MAX_PROBLEMS`` problems, and a last line when there were more."""
    shown = list(itertools.islice(problems, MAX_PROBLEMS))
    if next(problems, None) is not None:
        shown.append(
            FieldError(path="", message=f"more problems not shown (the first {MAX_PROBLEMS} are)")
        )
    return shown


def invariant_errors(config: Configuration) -> Iterator[FieldError]:
    """Problems that no single object can see: names, port clashes, duplicate servers."""
    seen_names: dict[str, int] = {}
    for index, vs in enumerate(config.virtual_services):
        where = f"virtual_services[{index}]"
        if vs.name in seen_names:
            yield FieldError(
                path=f"{where}.name",
                message=f"{vs.name!r} is already the name of virtual_services"
                f"[{seen_names[vs.name]}]",
            )
        seen_names.setdefault(vs.name, index)
        yield from _own_port_overlaps(vs, where)
        seen_servers: dict[str, int] = {}
        for rs_index, rs in enumerate(vs.real_servers):
            if rs.key in seen_servers:
                yield FieldError(
                    path=f"{where}.real_servers[{rs_index}]",
                    message=f"{rs.key} is already real_servers[{seen_servers[rs.key]}] "
                    "of this virtual service",
                )
            seen_servers.setdefault(rs.key, rs_index)
    yield from _clashes_between_services(config)
    yield from _pair_errors(config)


def _pair_errors(config: Configuration) -> Iterator[FieldError]:
    """A VIP is what the pair moves between its nodes: it is never a node's own address."""
    pair = config.high_availability
    if pair is None:
        return
    nodes = {node.address: index for index, node in enumerate(pair.nodes)}
    for index, vs in enumerate(config.virtual_services):
        if vs.address in nodes:
            yield FieldError(
                path=f"virtual_services[{index}].address",
                message=f"{vs.address} is the address of high_availability.nodes"
                f"[{nodes[vs.address]}]: a VIP of the pair must be an address of its own",
            )


def _own_port_overlaps(vs: VirtualService, where: str) -> Iterator[FieldError]:
    ranges = vs.port_ranges
    for i, later in enumerate(ranges[1:], start=1):
        for earlier in ranges[:i]:
            if later.overlaps(earlier):
                what = "port" if earlier is ranges[0] else f"extra port {earlier}"
                yield FieldError(
                    path=f"{where}.extra_ports[{i - 1}]",
                    message=f"{later} overlaps this service's {what}",
                )
                break


def _clashes_between_services(config: Configuration) -> Iterator[FieldError]:
    services = config.virtual_services
    for clash in port_clashes(services, limit=MAX_PROBLEMS + 1):
        vs, other = services[clash.index], services[clash.other]
        mine = vs.port_ranges[clash.position]
        yield FieldError(
            path=f"virtual_services[{clash.index}].port"
            if clash.position == 0
            else f"virtual_services[{clash.index}].extra_ports[{clash.position - 1}]",
            message=f"{clash.address} {Protocol(vs.protocol).value} port {mine} is already used "
            f"by virtual service {other.name!r} (port {clash.clash})",
        )


# Messages for pydantic's own error types, in words a person understands.
_MESSAGES: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "is not a known field (check the spelling in the configuration reference)",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}
_PREFIXED = re.compile(r"^([a-z_]+(?:\[\d+\])?): (.*)$", re.DOTALL)
_INDEX = re.compile(r"^(\[\d+\]): (.*)$", re.DOTALL)


def _translate(exc: ValidationError) -> Iterator[FieldError]:
    for error in exc.errors(include_url=False):
        path = _path(error["loc"])
        kind = error["type"]
        if kind == "enum":
            expected = error.get("ctx", {}).get("expected", "")
            message = f"must be one of {expected}"
        elif kind in {"value_error", "assertion_error"}:
            message = str(error["msg"]).removeprefix("Value error, ")
            # Validators that look at several fields prefix the field they blame.
            for pattern, joiner in ((_PREFIXED, "."), (_INDEX, "")):
                match = pattern.match(message)
                if match:
                    path = f"{path}{joiner}{match[1]}" if path else match[1]
                    message = match[2]
                    break
        else:
            message = _MESSAGES.get(kind, str(error["msg"]))
        yield FieldError(path=path, message=message)


def _path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item.startswith(("function-", "json-or-python", "lax-or-strict")) or item in {
            "int",
            "str",
        }:
            # pydantic's names for the branches of union and wrapped validators
            continue
        elif item.endswith("]") and "[" in item:
            continue
        else:
            parts.append(f".{item}" if parts else item)
    return "".join(parts)
