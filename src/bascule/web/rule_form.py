"""The content rule form: its fields, the rule a post makes, and a rule in words.

A rule (model/rules.py) is a name, a ``match`` of one or more conditions, one action and an
optional path rewrite. The form names each input by its model path (``match.path_prefix``,
``match.header.name``, ``rewrite_path.with``) so the model's field errors land beside it;
the action is one choice (``action.kind``, a ``RuleActionKind``) and only that action's
inputs are shown (``action_fields``), swapped by htmx when the choice changes. Empty inputs
are left out of the rule, so the model, not the form, says what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.datastructures import FormData

from bascule.model.capabilities import MatchKind, RuleActionKind
from bascule.model.rules import REDIRECT_CODES
from bascule.web.forms import Field, FormErrors, choices, parse, posted_fields
from bascule.web.option_fields import POOL_LIMITS, limits_value

ACTION_KIND = "action.kind"

NAME = Field(name="name", label="Name", help="Letters a-z, digits and dashes.")

MATCH_FIELDS = (
    Field(name="match.host", label="Host is", optional=True, help="www.example.com"),
    Field(name="match.host_suffix", label="Host ends with", optional=True, help="example.com"),
    Field(name="match.path", label="Path is", optional=True, help="/login"),
    Field(name="match.path_prefix", label="Path starts with", optional=True, help="/api/"),
    Field(
        name="match.path_regex",
        label="Path matches (regex)",
        optional=True,
        help="A regular expression, e.g. ^/img/.*\\.png$",
    ),
    Field(name="match.header.name", label="Header name", optional=True),
    Field(name="match.header.value", label="Header value is", optional=True),
    Field(name="match.header.regex", label="or header value matches (regex)", optional=True),
    Field(name="match.query.name", label="Query parameter", optional=True),
    Field(name="match.query.value", label="Query value is", optional=True),
    Field(name="match.method", label="Method", optional=True, help="GET, POST..."),
    Field(
        name="match.source",
        label="Client address in",
        optional=True,
        help="A network, e.g. 198.18.0.0/24",
    ),
    Field(name="match.negate", label="Negate: the rule applies when this does NOT match",
          kind="checkbox"),
)  # fmt: skip

KIND = Field(
    name=ACTION_KIND,
    label="Action",
    kind="select",
    choices=choices(RuleActionKind),
    help="use: a sub-service; use default: the service's own real servers.",
)
USE = Field(name="action.use", label="Sub-service", kind="select")
REDIRECT = Field(name="action.redirect", label="Redirect to", help="https://... or /path")
CODE = Field(
    name="action.code",
    label="Redirect code",
    kind="select",
    choices=tuple((str(code), str(code)) for code in REDIRECT_CODES),
)
RESPOND = Field(name="action.respond", label="Status code", kind="number", help="200 to 599")
BODY = Field(name="action.body", label="Body (text)", optional=True)
REWRITE = (
    Field(name="rewrite_path.regex", label="Rewrite path: regex", optional=True),
    Field(
        name="rewrite_path.with",
        label="Rewrite path: with",
        optional=True,
        help="\\1 is the first group",
    ),
)

#: The inputs of each action besides its choice.
ACTION_FIELDS: dict[RuleActionKind, tuple[Field, ...]] = {
    RuleActionKind.use: (USE,),
    RuleActionKind.redirect: (REDIRECT, CODE),
    RuleActionKind.respond: (RESPOND, BODY),
    RuleActionKind.use_default: (),
}
ALL_FIELDS = (NAME, *MATCH_FIELDS, KIND, USE, REDIRECT, CODE, RESPOND, BODY, *REWRITE)
#: Where the model's errors may land: every input, and the groups it judges as a whole.
ERROR_NAMES = (
    *(f.name for f in ALL_FIELDS),
    *(f.name for f in POOL_LIMITS),
    "match",
    "match.header",
    "match.query",
    "action",
    "limits",
    "limits.per_client",
)


def action_kind(value: object) -> RuleActionKind:
    try:
        return RuleActionKind(str(value))
    except ValueError:
        return RuleActionKind.use


def action_fields(kind: RuleActionKind, sub_services: Sequence[str]) -> tuple[Field, ...]:
    """The inputs of ``kind``, and the path rewrite unless the load balancer answers; the
    sub-service choice lists the service's sub-services."""
    fields = tuple(
        Field(name=USE.name, label=USE.label, kind="select", choices=choices_of(sub_services))
        if f is USE
        else f
        for f in ACTION_FIELDS[kind]
    )
    return fields if kind.answers else (*fields, *REWRITE)


def choices_of(names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple((name, name) for name in names)


def rule_document(form: FormData | Mapping[str, Any]) -> dict[str, Any]:
    """The rule a post describes: the chosen action's inputs only, empty inputs left out."""
    kind = action_kind(form.get(ACTION_KIND))
    wanted = {NAME, *MATCH_FIELDS, *ACTION_FIELDS[kind], *(() if kind.answers else REWRITE)}
    parsed = _pruned(parse(form, [f for f in ALL_FIELDS if f in wanted]))
    action = dict(parsed.pop("action", {}))
    if kind is RuleActionKind.use_default:
        action["use_default"] = True
    elif kind is RuleActionKind.redirect and isinstance(action.get("code"), str):
        action["code"] = int(action["code"]) if action["code"].isdigit() else action["code"]
    match = dict(parsed.pop("match", {}))
    if match.get("negate") is False:
        del match["negate"]
    rule = {"name": parsed.get("name", ""), "match": match, "action": action}
    if parsed.get("rewrite_path"):
        rule["rewrite_path"] = parsed["rewrite_path"]
    limits = parse(form, posted_fields(form, POOL_LIMITS)).get("limits")
    if isinstance(limits, dict) and (value := limits_value(limits)) is not None:
        rule["limits"] = value
    return rule


#: The parts of a rule its form always edits; its ``limits`` when the post has their inputs.
#: Anything else is kept as stored when the form changes the rule.
FORM_PARTS = frozenset({"name", "match", "action", "rewrite_path"})


def edited_rule(stored: Mapping[str, Any], form: FormData | Mapping[str, Any]) -> dict[str, Any]:
    """``stored`` changed as a post of its form says: what the form shows is replaced, the
    rest of the rule is kept."""
    posted_limits = any(str(key).startswith("limits.") for key in form)
    edited = FORM_PARTS | ({"limits"} if posted_limits else set())
    kept = {key: value for key, value in stored.items() if key not in edited}
    return {**kept, **rule_document(form)}


def _pruned(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without null values and the mappings left empty by them."""
    result: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            value = _pruned(value)
            if not value:
                continue
        if value is not None:
            result[key] = value
    return result


def rule_values(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A stored rule as the form's values (``action.kind`` from the action it holds)."""
    shown: dict[str, Any] = {"limits.response.code": 429}
    for field in (*ALL_FIELDS, *POOL_LIMITS):
        value: Any = rule
        for part in field.name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None or field.name not in shown:
            shown[field.name] = value
    rewrite = _mapping(rule.get("rewrite_path"))
    if shown.get("rewrite_path.with") is None:  # the stored form names it by its attribute
        shown["rewrite_path.with"] = rewrite.get("replacement")
    action = _mapping(rule.get("action"))
    shown[ACTION_KIND] = next(
        (k.value for k in RuleActionKind if action.get(k.value) not in (None, False)),
        RuleActionKind.use.value,
    )
    return shown


def rule_errors(errors: FormErrors) -> FormErrors:
    """The model's errors of the action as a whole go beside the action's choice."""
    fields = dict(errors.fields)
    if "action" in fields:
        whole = fields.pop("action")
        fields[ACTION_KIND] = f"{fields[ACTION_KIND]}; {whole}" if ACTION_KIND in fields else whole
    return FormErrors(fields=fields, general=errors.general)


def rule_summary(rule: Mapping[str, Any]) -> dict[str, str]:
    """A stored rule in one line per column: its name, what it matches, what it does."""
    match, action = _mapping(rule.get("match")), _mapping(rule.get("action"))
    conditions = [
        f"{kind.value}={_words(match[kind.value])}"
        for kind in MatchKind
        if match.get(kind.value) is not None
    ]
    matched = " and ".join(conditions)
    if match.get("negate"):
        matched = f"not ({matched})"
    does = ", ".join(f"{k}={_words(v)}" for k, v in action.items() if v is not None)
    rewrite = rule.get("rewrite_path")
    if isinstance(rewrite, Mapping):
        to = rewrite.get("with", rewrite.get("replacement"))
        does += f", rewrite {rewrite.get('regex')} to {to}"
    return {"name": str(rule.get("name", "")), "match": matched, "action": does}


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _words(value: object) -> str:
    if isinstance(value, Mapping):
        return " ".join(f"{k}={v}" for k, v in value.items() if v is not None)
    return str(value)
