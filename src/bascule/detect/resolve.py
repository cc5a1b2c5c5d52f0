"""From a detection verdict to the document that is committed (pure).

Where it sits: the service layer parses a change, asks probes.py for a ``Verdict`` on every
``type: auto`` service, then calls ``rewrite`` so the committed revision names the detected
type (and the detected check, unless the user chose one): ``auto`` is never stored, and the
engines never see it. ``choose`` also bends a verdict to what the service's mode can run
(``CheckType.modes``), and says so in a note rather than producing a document that would be
refused.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bascule.detect.classify import Verdict
from bascule.model.capabilities import CheckType, Mode, ServiceType
from bascule.model.virtual_service import VirtualService


@dataclass(frozen=True, kw_only=True)
class Choice:
    """What a ``type: auto`` service becomes; ``check`` None keeps the user's own check."""

    type: ServiceType
    check: CheckType | None
    notes: tuple[str, ...] = ()


def check_given(document: Mapping[str, Any], index: int) -> bool:
    """Whether the user set ``check.type`` on service ``index`` of a parsed document."""
    check = document["virtual_services"][index].get("check")
    return isinstance(check, Mapping) and check.get("type") is not None


def choose(verdict: Verdict, vs: VirtualService, *, keep_check: bool) -> Choice:
    """The type and check ``vs`` gets from ``verdict``, with a note for every compromise."""
    notes: list[str] = []
    kind = verdict.type
    if vs.mode is Mode.l4 and kind is not ServiceType.generic:
        notes.append(
            f"{kind.value} detected, but an l4 service is generic (the kernel forwards "
            "packets): type generic"
        )
        kind = ServiceType.generic
    if keep_check:
        return Choice(type=kind, check=None, notes=tuple(notes))
    check = verdict.check
    if vs.mode not in check.modes:
        notes.append(
            f"{check.value} checks are not supported yet on {vs.mode.value} services: "
            "a tcp check instead"
        )
        check = CheckType.tcp
    return Choice(type=kind, check=check, notes=tuple(notes))


def rewrite(document: Mapping[str, Any], choices: Mapping[int, Choice]) -> dict[str, Any]:
    """A copy of ``document`` with each chosen service's type (and check type) filled in."""
    result = copy.deepcopy(dict(document))
    services = [dict(service) for service in result["virtual_services"]]
    for index, choice in choices.items():
        service = services[index]
        service["type"] = choice.type.value
        if choice.check is not None:
            check = service.get("check")
            service["check"] = {
                **(dict(check) if isinstance(check, Mapping) else {}),
                "type": choice.check.value,
            }
    result["virtual_services"] = services
    return result
