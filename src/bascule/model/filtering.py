"""Filtering by client address: named access lists, the global block, a service's access (pure).

The document names its lists once, at the top (``access_lists``), and uses them by name: in
``block`` (dropped for every VIP, before any service) and in each virtual service's
``access: {allow, deny}`` (``allow`` empty: everyone but ``deny``). A list holds addresses and
CIDR networks of either family, in their canonical spelling, without overlaps (an interval set
in the kernel refuses them, and an overlap is always a mistake in a list someone keeps).
``parse_address_lines`` reads the text of a list file (one entry a line, ``#`` comments) and
reports every bad line by its number. The engines enforce the lists in the kernel
(``engines/nftables/access.py``); nothing here knows how.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from bascule.errors import FieldError, InvalidConfiguration, NotFound
from bascule.model.types import Name, SafeText

if TYPE_CHECKING:
    from bascule.model.document import Configuration

#: The most entries one list may hold (a 100,000-entry list loads in under a second).
MAX_ENTRIES = 1_000_000
#: The most bad lines one refused import reports.
MAX_LINE_ERRORS = 50


class Entry(NamedTuple):
    """One entry of a list: its family (4 or 6), first and last address as integers, prefix
    length and canonical spelling (an address alone for a single host). A named tuple, not a
    frozen dataclass: a 100,000-entry list makes 100,000 of them, and a tuple is made in a
    fifth of the time."""

    version: int
    first: int
    last: int
    prefixlen: int
    text: str


def parse_entry(text: str) -> Entry:
    """An address or a CIDR network; raise ValueError with a message for a person.

    Dotted IPv4 is read by hand (a 100,000-entry list is read in well under a second;
    ``ipaddress`` takes ten times as long); everything else, and every refusal, goes through
    ``ipaddress``, which says what is wrong."""
    value = text.strip()
    entry = _ipv4(value)
    if entry is not None:
        return entry
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    else:
        bits = network.max_prefixlen
        first = int(network.network_address)
        return Entry(
            version=network.version,
            first=first,
            last=first | ((1 << (bits - network.prefixlen)) - 1),
            prefixlen=network.prefixlen,
            text=str(network.network_address) if network.prefixlen == bits else str(network),
        )
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or a CIDR network") from None
    raise ValueError(f"{value} has host bits set: the network is {loose}")


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}(?:/(3[0-2]|[12]?[0-9]))?")


def _ipv4(value: str) -> Entry | None:
    """A well-formed dotted IPv4 address or network without host bits; None for anything
    else (which ``parse_entry`` then reads, or refuses, with ``ipaddress``)."""
    found = _IPV4.fullmatch(value)
    if found is None:
        return None
    a, b, c, d, prefix = found.groups()
    first = int(a) << 24 | int(b) << 16 | int(c) << 8 | int(d)
    prefixlen = 32 if prefix is None else int(prefix)
    size = 1 << (32 - prefixlen)
    if first & (size - 1):
        return None
    return Entry(
        version=4,
        first=first,
        last=first + size - 1,
        prefixlen=prefixlen,
        text=value if prefix is None or prefixlen != 32 else value.partition("/")[0],
    )


@dataclass(frozen=True, kw_only=True)
class Overlap:
    """Entry ``index`` overlaps entry ``other`` (positions in the list)."""

    index: int
    other: int


def overlaps(entries: Sequence[Entry]) -> Iterator[Overlap]:
    """Every entry that overlaps an earlier-starting one, found in n log n (sort, then one
    sweep per family keeping the furthest end seen)."""
    order = sorted((e.version, e.first, e.prefixlen, i) for i, e in enumerate(entries))
    version, furthest, owner = 0, -1, -1
    for *_, i in order:
        entry = entries[i]
        if entry.version != version:
            version, furthest, owner = entry.version, -1, -1
        if entry.first <= furthest:
            yield Overlap(index=max(i, owner), other=min(i, owner))
            if entry.last > furthest:
                furthest, owner = entry.last, i
            continue
        furthest, owner = entry.last, i


def _entries(values: list[str]) -> list[str]:
    if len(values) > MAX_ENTRIES:
        raise ValueError(f"holds {len(values)} entries; a list holds at most {MAX_ENTRIES}")
    entries: list[Entry] = []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"[{index}]: must be an address or a CIDR network")
        try:
            entries.append(parse_entry(value))
        except ValueError as exc:
            raise ValueError(f"[{index}]: {exc}") from None
    for overlap in overlaps(entries):
        raise ValueError(
            f"[{overlap.index}]: {entries[overlap.index].text} overlaps "
            f"{entries[overlap.other].text} ([{overlap.other}]); a list's entries may "
            "not overlap"
        )
    return [entry.text for entry in entries]


class AccessList(BaseModel):
    """A named list of client addresses and networks (``access_lists.NAME``).

    ``file``: where the entries were imported from (``bascule acl import``), for the record;
    the entries themselves are in ``addresses``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    addresses: Annotated[list[str], AfterValidator(_entries)] = Field(default_factory=list)
    file: SafeText | None = None

    def by_family(self) -> dict[int, list[str]]:
        """The entries (canonical, as validated) of each family: 4 and 6."""
        found: dict[int, list[str]] = {4: [], 6: []}
        for entry in self.addresses:
            found[6 if ":" in entry else 4].append(entry)
        return found


class Access(BaseModel):
    """Who may reach a virtual service: the lists it allows (empty: everyone) and denies.

    Deny wins: a client in both an allowed and a denied list is dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[Name] = Field(default_factory=list)
    deny: list[Name] = Field(default_factory=list)

    @property
    def filters(self) -> bool:
        return bool(self.allow or self.deny)


@dataclass(frozen=True, kw_only=True)
class LineError:
    """A bad line of a list file: its number (from 1) and what is wrong."""

    line: int
    message: str


class InvalidListFile(ValueError):
    """A list file with bad lines; ``errors`` names each by its number."""

    def __init__(self, errors: Sequence[LineError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(f"line {e.line}: {e.message}" for e in self.errors))


def parse_address_lines(text: str) -> list[str]:
    """The entries of a list file: one address or CIDR network a line; blank lines and
    everything after ``#`` are ignored. Raise ``InvalidListFile`` naming every bad line
    (at most ``MAX_LINE_ERRORS``) by its number: invalid entries and overlaps."""
    errors: list[LineError] = []
    entries: list[Entry] = []
    lines: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            entries.append(parse_entry(entry))
            lines.append(number)
        except ValueError as exc:
            errors.append(LineError(line=number, message=str(exc)))
    for overlap in overlaps(entries):
        errors.append(
            LineError(
                line=lines[overlap.index],
                message=f"{entries[overlap.index].text} overlaps "
                f"{entries[overlap.other].text} (line {lines[overlap.other]})",
            )
        )
    if errors:
        errors.sort(key=lambda error: error.line)
        raise InvalidListFile(errors[:MAX_LINE_ERRORS])
    if len(entries) > MAX_ENTRIES:
        raise InvalidListFile(
            [LineError(line=lines[MAX_ENTRIES], message=f"more than {MAX_ENTRIES} entries")]
        )
    return [entry.text for entry in entries]


def filtering_errors(config: Configuration) -> Iterator[FieldError]:
    """Every list name that ``block`` or a service's ``access`` uses and that is not in
    ``access_lists``."""
    known = config.access_lists
    for index, name in enumerate(config.block):
        if name not in known:
            yield _unknown(f"block[{index}]", name, known)
    for vs_index, vs in enumerate(config.virtual_services):
        if vs.access is None:
            continue
        for kind, names in (("allow", vs.access.allow), ("deny", vs.access.deny)):
            for index, name in enumerate(names):
                if name not in known:
                    path = f"virtual_services[{vs_index}].access.{kind}[{index}]"
                    yield _unknown(path, name, known)


def _unknown(path: str, name: str, known: dict[str, AccessList]) -> FieldError:
    names = ", ".join(sorted(known)) or "none is defined"
    return FieldError(path=path, message=f"{name!r} is not in access_lists ({names})")


def used_lists(config: Configuration) -> tuple[str, ...]:
    """The names of the lists the document uses (block, then services), each once, sorted."""
    names = set(config.block)
    for vs in config.virtual_services:
        if vs.access is not None:
            names.update(vs.access.allow)
            names.update(vs.access.deny)
    return tuple(sorted(names))


def list_uses(document: Mapping[str, Any], name: str) -> list[str]:
    """Where the document (as stored) uses list ``name``: ``block``, then ``SERVICE.allow``
    and ``SERVICE.deny`` in the services' order."""
    used = ["block"] if name in (document.get("block") or []) else []
    for vs in document.get("virtual_services") or []:
        access = vs.get("access") or {}
        for kind in ("allow", "deny"):
            if name in access.get(kind, []):
                used.append(f"{vs['name']}.{kind}")
    return used


def list_summaries(
    document: Mapping[str, Any], dropped: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Each list of the document (as stored), by name: its entries, file, uses (``list_uses``),
    whether ``block`` holds it, and the packets dropped because of it (``dropped``: the filter
    engine's counters by list). What ``bascule acl show`` and the WUI's page list."""
    blocked = set(document.get("block") or [])
    return [
        {
            "name": name,
            "entries": len(body.get("addresses") or []),
            "file": body.get("file"),
            "used_by": list_uses(document, name),
            "blocked": name in blocked,
            "dropped_packets": dropped.get(name, {}).get("dropped_packets", 0),
        }
        for name, body in sorted((document.get("access_lists") or {}).items())
    ]


# -- edits of the document (the doors' ``acl`` commands), pure like model/edits.py -----------


def set_access_list(
    document: Mapping[str, Any], name: str, addresses: Sequence[str], file: str | None
) -> dict[str, Any]:
    """The document with list ``name`` holding ``addresses`` (created if new)."""
    result = copy.deepcopy(dict(document))
    lists = dict(result.get("access_lists") or {})
    lists[name] = {"addresses": list(addresses), "file": file}
    result["access_lists"] = lists
    return result


def delete_access_list(document: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The document without list ``name`` (``NotFound`` when it has none); a list still in
    use is refused by the model, naming where."""
    result = copy.deepcopy(dict(document))
    lists = dict(result.get("access_lists") or {})
    if name not in lists:
        raise NotFound(f"there is no access list named {name!r}")
    del lists[name]
    result["access_lists"] = lists
    return result


def set_blocked(document: Mapping[str, Any], name: str, blocked: bool) -> dict[str, Any]:
    """The document with list ``name`` in ``block`` (its clients dropped on every virtual
    service) or out of it; ``NotFound`` when the document has no such list."""
    if name not in (document.get("access_lists") or {}):
        raise NotFound(f"there is no access list named {name!r}")
    result = copy.deepcopy(dict(document))
    names = [listed for listed in result.get("block") or [] if listed != name]
    result["block"] = sorted([*names, name]) if blocked else names
    return result


def import_errors(name: str, error: InvalidListFile) -> InvalidConfiguration:
    """A refused list file as the field errors of the list, one per bad line."""
    return InvalidConfiguration(
        [
            FieldError(path=f"access_lists.{name}.file", message=f"line {e.line}: {e.message}")
            for e in error.errors
        ]
    )
