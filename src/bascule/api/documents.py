"""Read-side lookups in the current document: one virtual service, its real servers.

The routes that show one object read the current revision through the service layer and pick
the object here, with the same identities and ``NotFound`` messages as the edits of
model/edits.py (a real server is ``address:port``, IPv6 in brackets, however the client spelt
it). Pure: takes a document, returns part of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bascule.errors import NotFound
from bascule.model.edits import normalise_key, server_key


def virtual_service(document: Mapping[str, Any], name: str) -> dict[str, Any]:
    for vs in document.get("virtual_services", []):
        if vs.get("name") == name:
            return dict(vs)
    raise NotFound(f"there is no virtual service named {name!r}")


def named_part(document: Mapping[str, Any], name: str, part: str, key: str) -> dict[str, Any]:
    """One sub-service (``part`` "sub_services") or rule ("rules") of service ``name``."""
    for item in virtual_service(document, name).get(part, []):
        if item.get("name") == key:
            return dict(item)
    what = "sub-service" if part == "sub_services" else "rule"
    raise NotFound(f"virtual service {name!r} has no {what} named {key!r}")


def real_servers(document: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    return [dict(rs) for rs in virtual_service(document, name).get("real_servers", [])]


def real_server(document: Mapping[str, Any], name: str, key: str) -> dict[str, Any]:
    wanted = normalise_key(key)
    for rs in real_servers(document, name):
        if server_key(rs.get("address"), rs.get("port")) == wanted:
            return rs
    raise NotFound(f"virtual service {name!r} has no real server {wanted}")
