"""/access-lists: the document's named address lists (``bascule acl ...``).

Each write is a pure edit of the current document (model/filtering.py) validated as a whole;
a list file is read here (``import``), every bad line refused by its number and nothing
changed. Reads show each list with where it is used and, when the filter runs it, the packets
dropped because of it (the filter engine's counters, as the status reports them).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from bascule.api.answers import edit_answer
from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import ConfigServiceDep, ConfigureChange
from bascule.api.etags import tag
from bascule.api.schemas import ApplyResultOut
from bascule.errors import NotFound
from bascule.model import filtering

router = APIRouter(prefix="/access-lists", tags=["access lists"], route_class=OffLoopRoute)


class AccessListIn(BaseModel):
    addresses: list[Any] = Field(description="Addresses and CIDR networks, no overlaps")
    file: str | None = Field(default=None, description="Where they come from, for the record")


class ListFileIn(BaseModel):
    text: str = Field(description="One address or CIDR network a line; '#' starts a comment")
    file: str | None = Field(default=None, description="The file's name, for the record")


@router.get("", summary="Every access list: entries, where it is used, packets dropped")
async def list_access_lists(config: ConfigServiceDep, response: Response) -> dict[str, Any]:
    revision, document = config.document()
    tag(response, revision)
    dropped = await config.access_list_drops()
    return {"items": filtering.list_summaries(document, dropped)}


@router.get("/{name}", summary="One access list, as in the document")
async def read_access_list(name: str, config: ConfigServiceDep, response: Response) -> Any:
    revision, document = config.document()
    tag(response, revision)
    body = document.get("access_lists", {}).get(name)
    if body is None:
        raise NotFound(f"there is no access list named {name!r}")
    return {"name": name, **body}


@router.put("/{name}", summary="Create or replace an access list")
async def replace_access_list(
    name: str,
    body: AccessListIn,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    return await edit_answer(
        config,
        response,
        lambda doc: filtering.set_access_list(doc, name, body.addresses, body.file),
        change_request,
        f"set access list {name}",
    )


@router.post("/{name}/import", summary="Replace an access list with a list file's entries")
async def import_access_list(
    name: str,
    body: ListFileIn,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    try:
        addresses = filtering.parse_address_lines(body.text)
    except filtering.InvalidListFile as exc:
        raise filtering.import_errors(name, exc) from None
    return await edit_answer(
        config,
        response,
        lambda doc: filtering.set_access_list(doc, name, addresses, body.file),
        change_request,
        f"import access list {name} ({len(addresses)} entries)",
    )


@router.delete("/{name}", summary="Remove an access list (refused while it is used)")
async def delete_access_list(
    name: str,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    return await edit_answer(
        config,
        response,
        lambda doc: filtering.delete_access_list(doc, name),
        change_request,
        f"remove access list {name}",
    )


@router.put("/{name}/block", summary="Drop the list's clients on every virtual service")
async def block_access_list(
    name: str, config: ConfigServiceDep, change_request: ConfigureChange, response: Response
) -> ApplyResultOut:
    return await _set_blocked(name, True, config, change_request, response)


@router.delete("/{name}/block", summary="Stop dropping the list's clients everywhere")
async def unblock_access_list(
    name: str, config: ConfigServiceDep, change_request: ConfigureChange, response: Response
) -> ApplyResultOut:
    return await _set_blocked(name, False, config, change_request, response)


async def _set_blocked(
    name: str,
    blocked: bool,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    verb = "block" if blocked else "unblock"
    return await edit_answer(
        config,
        response,
        lambda doc: filtering.set_blocked(doc, name, blocked),
        change_request,
        f"{verb} access list {name}",
    )
