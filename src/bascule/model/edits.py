"""Edits of a configuration document, as pure functions on its JSON form.

The CLI's, the API's and the WUI's fine-grained commands (``vs add``, ``vs set``, ``rs
drain``...) are expressed as edits of the current document; the service layer then validates
the result with ``parse_document``, with the same outcome as if the user had applied it as a
file. Each function returns a new document and never mutates its argument.

The new document shares the services it does not change with its argument (the very same
mappings: copy on write): at 1,000 services of 10 servers a deep copy of the whole document
cost ~100 ms a change, and the change pipeline tells the touched services by identity, to
validate and compare only those (issue 15). So nobody may mutate a document in place.

The rules of a merge live here, so every door behaves the same: a change of ``scheduler``
away from ``adaptive`` drops the service's ``adaptive`` block (the agent settings mean
nothing to another scheduler, and the model refuses them there), unless the same change sets
``adaptive`` itself, which the model then judges. A whole document (``apply -f``) or a
replaced service (PUT) says everything itself and is taken as written.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from bascule.errors import FieldError, InvalidConfiguration, NotFound
from bascule.model.capabilities import Scheduler
from bascule.model.sub_service import POOL_SEPARATOR

Document = dict[str, Any]


def add_virtual_service(document: Mapping[str, Any], service: Mapping[str, Any]) -> Document:
    result = _copy(document)
    name = service.get("name")
    if _find_service(result, name) is not None:
        raise InvalidConfiguration(
            [FieldError(path="name", message=f"a virtual service named {name!r} already exists")]
        )
    result["virtual_services"].append(copy.deepcopy(dict(service)))
    return result


def replace_virtual_service(
    document: Mapping[str, Any], name: str, service: Mapping[str, Any]
) -> Document:
    result = _copy(document)
    index = _service_index(result, name)
    result["virtual_services"][index] = copy.deepcopy(dict(service))
    return result


def update_virtual_service(
    document: Mapping[str, Any], name: str, changes: Mapping[str, Any]
) -> Document:
    """Merge ``changes`` into a service (nested mappings merge; lists replace); a new
    scheduler other than ``adaptive`` drops the ``adaptive`` block (see the module's doc)."""
    result = _copy(document)
    index = _service_index(result, name)
    merged = _merge(_own_service(result, index), changes)
    if (
        "scheduler" in changes
        and changes["scheduler"] != Scheduler.adaptive.value
        and "adaptive" not in changes
    ):
        merged.pop("adaptive", None)
    result["virtual_services"][index] = merged
    return result


def delete_virtual_service(document: Mapping[str, Any], name: str) -> Document:
    result = _copy(document)
    del result["virtual_services"][_service_index(result, name)]
    return result


def add_real_server(
    document: Mapping[str, Any], service: str, server: Mapping[str, Any]
) -> Document:
    result = _copy(document)
    vs = _pool(result, service)
    servers = vs.setdefault("real_servers", [])
    key = server_key(server.get("address"), server.get("port"))
    if any(server_key(rs.get("address"), rs.get("port")) == key for rs in servers):
        raise InvalidConfiguration(
            [FieldError(path="address", message=f"{key} is already a real server of {service}")]
        )
    servers.append(copy.deepcopy(dict(server)))
    return result


def update_real_server(
    document: Mapping[str, Any], service: str, key: str, changes: Mapping[str, Any]
) -> Document:
    result = _copy(document)
    vs = _pool(result, service)
    index = _server_index(vs, service, key)
    vs["real_servers"][index] = _merge(vs["real_servers"][index], changes)
    return result


def update_real_servers(
    document: Mapping[str, Any], changes: Sequence[tuple[str, str, Mapping[str, Any]]]
) -> Document:
    """``update_real_server`` of each (pool, key, changes), in one new document."""
    result = _copy(document)
    for service, key, fields in changes:
        vs = _pool(result, service)
        index = _server_index(vs, service, key)
        vs["real_servers"][index] = _merge(vs["real_servers"][index], fields)
    return result


def servers_at(document: Mapping[str, Any], address: str) -> list[tuple[str, str]]:
    """(pool, key) of every real server at ``address`` in every service and sub-service
    (a bulk operation: ``bascule rs drain --address 198.18.0.21``), in document order."""
    try:
        wanted = str(ipaddress.ip_address(address.strip("[]")))
    except ValueError:
        raise InvalidConfiguration(
            [FieldError(path="address", message=f"{address!r} is not an IP address")]
        ) from None
    found: list[tuple[str, str]] = []
    for vs in document.get("virtual_services", []):
        pools = [(vs.get("name"), vs)]
        pools += [
            (f"{vs.get('name')}{POOL_SEPARATOR}{sub.get('name')}", sub)
            for sub in vs.get("sub_services", [])
            if isinstance(sub, Mapping)
        ]
        for pool, holder in pools:
            for rs in holder.get("real_servers", []):
                key = server_key(rs.get("address"), rs.get("port"))
                if key.rpartition(":")[0].strip("[]") == wanted:
                    found.append((str(pool), key))
    return found


def delete_real_server(document: Mapping[str, Any], service: str, key: str) -> Document:
    result = _copy(document)
    vs = _pool(result, service)
    del vs["real_servers"][_server_index(vs, service, key)]
    return result


# -- content rules and sub-services (issue 12) ------------------------------------------------
# Rules are identified by name inside their service and kept in order (first match wins);
# a new rule goes last, ``move_rule`` changes its place. The model judges what they say.


def add_rule(document: Mapping[str, Any], service: str, rule: Mapping[str, Any]) -> Document:
    result = _copy(document)
    rules = _service(result, service).setdefault("rules", [])
    _refuse_taken(rules, rule.get("name"), f"a rule of {service}")
    rules.append(copy.deepcopy(dict(rule)))
    return result


def replace_rule(
    document: Mapping[str, Any], service: str, name: str, rule: Mapping[str, Any]
) -> Document:
    """Put ``rule`` in the place of rule ``name`` (it may rename it)."""
    result = _copy(document)
    rules = _service(result, service).get("rules", [])
    index = _named_index(rules, name, f"virtual service {service!r} has no rule")
    if rule.get("name") != name:
        _refuse_taken(rules, rule.get("name"), f"a rule of {service}")
    rules[index] = copy.deepcopy(dict(rule))
    return result


def update_rule(
    document: Mapping[str, Any], service: str, name: str, changes: Mapping[str, Any]
) -> Document:
    """Merge ``changes`` into rule ``name`` (as ``update_virtual_service`` merges; a rename is
    refused when the name is taken)."""
    result = _copy(document)
    rules = _service(result, service).get("rules", [])
    index = _named_index(rules, name, f"virtual service {service!r} has no rule")
    if changes.get("name", name) != name:
        _refuse_taken(rules, changes.get("name"), f"a rule of {service}")
    rules[index] = _merge(rules[index], changes)
    return result


def delete_rule(document: Mapping[str, Any], service: str, name: str) -> Document:
    result = _copy(document)
    rules = _service(result, service).get("rules", [])
    del rules[_named_index(rules, name, f"virtual service {service!r} has no rule")]
    return result


def move_rule(document: Mapping[str, Any], service: str, name: str, position: int) -> Document:
    """Move rule ``name`` to ``position`` (0 is tried first; clamped to the list)."""
    result = _copy(document)
    rules = _service(result, service).get("rules", [])
    rule = rules.pop(_named_index(rules, name, f"virtual service {service!r} has no rule"))
    rules.insert(max(0, min(position, len(rules))), rule)
    return result


def add_sub_service(
    document: Mapping[str, Any], service: str, sub_service: Mapping[str, Any]
) -> Document:
    result = _copy(document)
    subs = _service(result, service).setdefault("sub_services", [])
    _refuse_taken(subs, sub_service.get("name"), f"a sub-service of {service}")
    subs.append(copy.deepcopy(dict(sub_service)))
    return result


def update_sub_service(
    document: Mapping[str, Any], service: str, name: str, changes: Mapping[str, Any]
) -> Document:
    """Merge ``changes`` into sub-service ``name`` (as ``update_virtual_service`` merges)."""
    result = _copy(document)
    subs = _service(result, service).get("sub_services", [])
    index = _named_index(subs, name, f"virtual service {service!r} has no sub-service")
    subs[index] = _merge(subs[index], changes)
    return result


def delete_sub_service(document: Mapping[str, Any], service: str, name: str) -> Document:
    """Remove sub-service ``name``; a rule still using it is then the model's field error."""
    result = _copy(document)
    subs = _service(result, service).get("sub_services", [])
    del subs[_named_index(subs, name, f"virtual service {service!r} has no sub-service")]
    return result


def _service(document: Document, name: str) -> dict[str, Any]:
    """Service ``name`` of ``document`` (a ``_copy``), its own copy: to change in place."""
    return _own_service(document, _service_index(document, name))


def _own_service(document: Document, index: int) -> dict[str, Any]:
    """Service ``index`` of ``document`` (a ``_copy``), copied into it: to change in place
    (a second call copies the copy again, which keeps what the first changed)."""
    services: list[Any] = document["virtual_services"]
    service = copy.deepcopy(dict(services[index]))
    services[index] = service
    return service


def _named_index(items: list[Any], name: str, missing: str) -> int:
    for index, item in enumerate(items):
        if isinstance(item, Mapping) and item.get("name") == name:
            return index
    raise NotFound(f"{missing} named {name!r}")


def _refuse_taken(items: list[Any], name: object, what: str) -> None:
    if any(isinstance(item, Mapping) and item.get("name") == name for item in items):
        raise InvalidConfiguration(
            [FieldError(path="name", message=f"{what} is already named {name!r}")]
        )


def server_key(address: Any, port: Any) -> str:
    """``address:port`` as RealServer.key spells it (IPv6 in brackets, address normalised)."""
    text = str(address)
    try:
        parsed = ipaddress.ip_address(text.strip("[]"))
        text = f"[{parsed}]" if parsed.version == 6 else str(parsed)
    except ValueError:
        pass
    return f"{text}:{port}"


def normalise_key(key: str) -> str:
    """Accept ``198.18.0.4:80``, ``[2001:db8::1]:80`` (and unbracketed v6) as a server key."""
    host, _, port = key.rpartition(":")
    if not host or not port.isdigit():
        raise NotFound(f"{key!r} is not a real server address:port")
    return server_key(host, int(port))


def _copy(document: Mapping[str, Any]) -> Document:
    """A new document: its own list of services, the services themselves shared (copy on
    write: ``_own_service``), everything else copied."""
    result = {
        key: list(value)
        if key == "virtual_services" and isinstance(value, list)
        else copy.deepcopy(value)
        for key, value in document.items()
    }
    result.setdefault("virtual_services", [])
    return result


def _find_service(document: Document, name: object) -> int | None:
    for index, vs in enumerate(document["virtual_services"]):
        if isinstance(vs, Mapping) and vs.get("name") == name:
            return index
    return None


def _service_index(document: Document, name: str) -> int:
    index = _find_service(document, name)
    if index is None:
        raise NotFound(f"there is no virtual service named {name!r}")
    return index


def _pool(document: Document, name: str) -> dict[str, Any]:
    """The mapping that holds a pool's real servers: a service's, or a sub-service's when
    ``name`` is ``<service>/<sub-service>``."""
    service, _, sub_name = name.partition(POOL_SEPARATOR)
    vs = _service(document, service)
    if not sub_name:
        return vs
    for sub in vs.get("sub_services", []):
        if isinstance(sub, dict) and sub.get("name") == sub_name:
            return sub
    raise NotFound(f"virtual service {service!r} has no sub-service named {sub_name!r}")


def _server_index(vs: Mapping[str, Any], service: str, key: str) -> int:
    wanted = normalise_key(key)
    for index, rs in enumerate(vs.get("real_servers", [])):
        if server_key(rs.get("address"), rs.get("port")) == wanted:
            return index
    raise NotFound(f"virtual service {service!r} has no real server {wanted}")


def _merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
