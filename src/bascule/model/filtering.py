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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from bascule.errors import FieldError, InvalidConfiguration, NotFound
from bascule.model.types import Name, SafeText

if TYPE_CHECKING:
    from bascule.model.document import Configuration

#: The most entries one list may hold (a 100,000-entry list loads in under a second).
MAX_ENTRIES = 1_000_000
#: The most bad lines one refused import reports.
MAX_LINE_ERRORS = 50

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_entry(text: str) -> Network:
    """An address or a CIDR network; raise ValueError with a message for a person."""
    value = text.strip()
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or a CIDR network") from None
    raise ValueError(f"{value} has host bits set: the network is {loose}")


def spelling(network: Network) -> str:
    """The canonical spelling: an address alone for a single host, else ``address/prefix``."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


@dataclass(frozen=True, kw_only=True)
class Overlap:
    """Entry ``index`` overlaps entry ``other`` (positions in the list)."""

    index: int
    other: int


def overlaps(networks: Sequence[Network]) -> Iterator[Overlap]:
    """Every entry that overlaps an earlier-starting one, found in n log n (sort, then one
    sweep per family keeping the furthest end seen)."""
    order = sorted(
        range(len(networks)),
        key=lambda i: (
            networks[i].version,
            int(networks[i].network_address),
            networks[i].prefixlen,
        ),
    )
    version, furthest, owner = 0, -1, -1
    for i in order:
        network = networks[i]
        start, end = int(network.network_address), int(network.broadcast_address)
        if network.version != version:
            version, furthest, owner = network.version, -1, -1
        if start <= furthest:
            yield Overlap(index=max(i, owner), other=min(i, owner))
            if end > furthest:
                furthest, owner = end, i
            continue
        furthest, owner = end, i


def _entries(values: list[str]) -> list[str]:
    if len(values) > MAX_ENTRIES:
        raise ValueError(f"holds {len(values)} entries; a list holds at most {MAX_ENTRIES}")
    networks: list[Network] = []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"[{index}]: must be an address or a CIDR network")
        try:
            networks.append(parse_entry(value))
        except ValueError as exc:
            raise ValueError(f"[{index}]: {exc}") from None
    for overlap in overlaps(networks):
        raise ValueError(
            f"[{overlap.index}]: {spelling(networks[overlap.index])} overlaps "
            f"{spelling(networks[overlap.other])} ([{overlap.other}]); a list's entries may "
            "not overlap"
        )
    return [spelling(network) for network in networks]


class AccessList(BaseModel):
    """A named list of client addresses and networks (``access_lists.NAME``).

    ``file``: where the entries were imported from (``bascule acl import``), for the record;
    the entries themselves are in ``addresses``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    addresses: Annotated[list[str], AfterValidator(_entries)] = Field(default_factory=list)
    file: SafeText | None = None

    def networks(self) -> tuple[Network, ...]:
        return tuple(ipaddress.ip_network(entry) for entry in self.addresses)


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
    networks: list[Network] = []
    lines: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            networks.append(parse_entry(entry))
            lines.append(number)
        except ValueError as exc:
            errors.append(LineError(line=number, message=str(exc)))
    for overlap in overlaps(networks):
        errors.append(
            LineError(
                line=lines[overlap.index],
                message=f"{spelling(networks[overlap.index])} overlaps "
                f"{spelling(networks[overlap.other])} (line {lines[overlap.other]})",
            )
        )
    if errors:
        errors.sort(key=lambda error: error.line)
        raise InvalidListFile(errors[:MAX_LINE_ERRORS])
    if len(networks) > MAX_ENTRIES:
        raise InvalidListFile(
            [LineError(line=lines[MAX_ENTRIES], message=f"more than {MAX_ENTRIES} entries")]
        )
    return [spelling(network) for network in networks]


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


def import_errors(name: str, error: InvalidListFile) -> InvalidConfiguration:
    """A refused list file as the field errors of the list, one per bad line."""
    return InvalidConfiguration(
        [
            FieldError(path=f"access_lists.{name}.file", message=f"line {e.line}: {e.message}")
            for e in error.errors
        ]
    )
