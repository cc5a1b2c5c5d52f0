"""Content rules, header operations, path rewrites and "not available" as HAProxy lines (pure).

Part of the HAProxy view (view.py builds a service's ``listen`` section and calls these for
its L7 sections; sub-services become ``backend`` sections named by
``persistence.section_name``). Section numbers refer to HAProxy 2.6's ``configuration.txt``.

First match wins across actions of every kind, which HAProxy's own rule lists cannot say
(``http-request`` rules all run before ``use_backend`` rules, 4.2). So each rule's match is
evaluated once, in order, by ``http-request set-var(txn.bascule_rule) int(<n>)`` guarded by
"no rule matched yet"; each action is then conditioned on that variable holding its rule's
number. The order of a request's processing in the ``listen`` section:

1. ``request_headers`` (in order), and the Via header of ``forwarded``;
2. the rules' matches (on the request as the header operations left it), then the matched
   rule's ``limits`` (limits.py, passed in as ``after_matches``);
3. the matched rule's answer (``redirect``, ``respond``) or its ``rewrite_path``;
4. the service's ``rewrite_path``;
5. "not available" for the default pool (when no rule sent the request elsewhere);
6. ``use_backend`` for the matched rule's sub-service.

``response_headers`` run on every response that passes the section (4.2 "http-response").
Every user string is printed with ``quoting.quote`` or ``quote_log_format``; ACL names are
made of the rule's position, never of user text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bascule.engines.haproxy.persistence import section_name
from bascule.engines.haproxy.quoting import quote, quote_log_format, token
from bascule.model.capabilities import HeaderOperationKind, MatchKind, RuleActionKind
from bascule.model.rules import (
    PAGE_MEDIA_TYPE,
    HeaderOperation,
    Match,
    NotAvailable,
    Rule,
    page_file_name,
)
from bascule.model.virtual_service import VirtualService

#: The transaction variable that holds the number (1-based) of the rule that matched (2.8).
RULE_VAR = "txn.bascule_rule"
#: What a Via header added by ``forwarded`` names the load balancer (RFC 9110 7.6.3).
VIA_PSEUDONYM = "bascule"
_MATCHED = f"{{ var({RULE_VAR}) -m found }}"


def _host(match: Match) -> str:
    # 7.3.6 "req.hdr": the Host header; HTTP/2's :authority is presented as Host. Without
    # a port in the rule, the header's port (after ':') is left out of the comparison.
    host = match.host or ""
    if ":" in host:
        return f"req.hdr(host),lower -m str -- {quote(host)}"
    return f"req.hdr(host),field(1,:),lower -m str -- {quote(host)}"


def _host_suffix(match: Match) -> str:
    # the domain itself or any name under it: "(^|\.)example\.com$" (the model allows
    # letters, digits, '-' and '.' only, so escaping the dots is enough)
    domain = (match.host_suffix or "").replace(".", "\\.")
    pattern = "(^|\\.)" + domain + "$"
    return f"req.hdr(host),field(1,:),lower -m reg -- {quote(pattern)}"


def _path(match: Match) -> str:
    return f"path -m str -- {quote(match.path or '')}"  # 7.3.6 "path": without the query


def _path_prefix(match: Match) -> str:
    return f"path -m beg -- {quote(match.path_prefix or '')}"


def _path_regex(match: Match) -> str:
    return f"path -m reg -- {quote(match.path_regex or '')}"


def _header(match: Match) -> str:
    # the model limits the name to [A-Za-z0-9_.-], which the fetch's argument carries as is
    header = match.header
    if header is None:
        raise ValueError("no header condition")
    fetch = f"req.hdr({token(header.name)})"
    if header.regex is not None:
        return f"{fetch} -m reg -- {quote(header.regex)}"
    return f"{fetch} -m str -- {quote(header.value or '')}"


def _query(match: Match) -> str:
    query = match.query
    if query is None:
        raise ValueError("no query condition")
    return f"url_param({token(query.name)}) -m str -- {quote(query.value)}"


def _method(match: Match) -> str:
    return f"method -m str {token(match.method or '')}"


def _source(match: Match) -> str:
    return f"src {token(match.source or '')}"


# How each condition of a match is tested: an ACL's fetch, match method and pattern (7.1).
# "--" ends the ACL's options before every pattern a user wrote: a pattern starting with '-'
# would otherwise be read as an option (quoting does not help, options are read after it).
MATCHES: dict[MatchKind, Callable[[Match], str]] = {
    MatchKind.host: _host,
    MatchKind.host_suffix: _host_suffix,
    MatchKind.path: _path,
    MatchKind.path_prefix: _path_prefix,
    MatchKind.path_regex: _path_regex,
    MatchKind.header: _header,
    MatchKind.query: _query,
    MatchKind.method: _method,
    MatchKind.source: _source,
}

# 4.2 "http-request set-header / add-header / del-header / replace-header", and their
# http-response twins: the header name is a plain word, the value a log-format string.
HEADER_ACTIONS: dict[HeaderOperationKind, str] = {
    HeaderOperationKind.set: "set-header",
    HeaderOperationKind.add: "add-header",
    HeaderOperationKind.delete: "del-header",
    HeaderOperationKind.replace_: "replace-header",
}


@dataclass(frozen=True, kw_only=True)
class ContentView:
    """What a service's L7 sections add to its ``listen`` section."""

    acls: tuple[str, ...] = ()
    request_rules: tuple[str, ...] = ()
    response_rules: tuple[str, ...] = ()
    use_backends: tuple[str, ...] = ()


def content_view(
    vs: VirtualService,
    sections: dict[str, str],
    *,
    pages_dir: str,
    after_matches: tuple[str, ...] = (),
) -> ContentView:
    """The lines of ``vs``'s rules; ``sections`` maps sub-service names to backend names;
    ``pages_dir``: where the page store's files are; ``after_matches``: lines between the
    rules' matches and their actions (the rules' limits)."""
    rules = vs.rules
    acls: list[str] = []
    matching: list[str] = []
    for number, rule in enumerate(rules, start=1):
        names = [f"bascule_rule{number}_{kind.value}" for kind in rule.match.kinds]
        acls += [
            f"acl {name} {MATCHES[kind](rule.match)}"
            for name, kind in zip(names, rule.match.kinds, strict=True)
        ]
        matching.append(
            f"http-request set-var({RULE_VAR}) int({number}) if {_condition(rule, names)}"
        )
    request = [*_header_rules("http-request", vs.request_headers)]
    if vs.forwarded.via_header:
        # 7.3.6 "req.ver": "1.1" or "2.0", the version the client spoke
        request.append(f"http-request add-header Via {quote(f'%[req.ver] {VIA_PSEUDONYM}')}")
    request += matching
    request += after_matches
    request += [line for number, rule in enumerate(rules, 1) for line in _actions(number, rule)]
    if vs.rewrite_path is not None:
        rewrite = vs.rewrite_path
        request.append(
            f"http-request replace-path {quote(rewrite.regex)} "
            f"{quote_log_format(rewrite.replacement)}"
        )
    uses = [
        (number, rule.action.use)
        for number, rule in enumerate(rules, 1)
        if rule.action.kind is RuleActionKind.use and rule.action.use is not None
    ]
    if vs.not_available is not None:
        elsewhere = " ".join(str(number) for number, _ in uses)
        guard = f" !{{ var({RULE_VAR}) -m int {elsewhere} }}" if uses else ""
        request += not_available_rules(vs.not_available, vs, pages_dir=pages_dir, guard=guard)
    return ContentView(
        acls=tuple(acls),
        request_rules=tuple(request),
        response_rules=_header_rules("http-response", vs.response_headers),
        use_backends=tuple(
            f"use_backend {token(sections[sub])} if {{ var({RULE_VAR}) -m int {number} }}"
            for number, sub in uses
        ),
    )


def _condition(rule: Rule, names: list[str]) -> str:
    # 7.2: words of a condition are ANDed, "||" ORs them; "not all hold" is written by
    # De Morgan as "one does not hold".
    if rule.match.negate:
        return " || ".join(f"!{_MATCHED} !{name}" for name in names)
    return " ".join([f"!{_MATCHED}", *names])


def _actions(number: int, rule: Rule) -> tuple[str, ...]:
    chosen = f"if {{ var({RULE_VAR}) -m int {number} }}"
    action = rule.action
    lines: list[str] = []
    if action.kind is RuleActionKind.redirect:
        # 4.2 "http-request redirect": the location is a log-format string
        lines.append(
            f"http-request redirect location {quote_log_format(action.redirect or '')} "
            f"code {action.redirect_code} {chosen}"
        )
    elif action.kind is RuleActionKind.respond:
        lines.append(f"{_return(action.respond or 0, action.body)} {chosen}")
    if rule.rewrite_path is not None:
        # 4.2 "http-request replace-path <match-regex> <replace-fmt>"
        lines.append(
            f"http-request replace-path {quote(rule.rewrite_path.regex)} "
            f"{quote_log_format(rule.rewrite_path.replacement)} {chosen}"
        )
    return tuple(lines)


def _return(code: int, body: str | None) -> str:
    # 4.2 "http-request return": "string" is a plain string (not log-format)
    line = f"http-request return status {code}"
    if body:
        line += f" content-type text/plain string {quote(body)}"
    return line


def _header_rules(directive: str, operations: list[HeaderOperation]) -> tuple[str, ...]:
    lines = []
    for operation in operations:
        words = [directive, HEADER_ACTIONS[operation.kind], quote(operation.header)]
        if operation.kind.takes_value:
            words.append(quote_log_format(operation.value or ""))
        if operation.kind.takes_regex:
            words += [quote(operation.regex or ""), quote_log_format(operation.replacement or "")]
        lines.append(" ".join(words))
    return tuple(lines)


def not_available_rules(
    available: NotAvailable, pool: VirtualService, *, pages_dir: str, guard: str = ""
) -> tuple[str, ...]:
    """A pool's answer when none of its real servers is up (7.3.1 "nbsrv"); a sorry server
    is a ``backup`` server instead (view.py). ``guard``: more conditions. A page of the
    page store is read by HAProxy when it loads the configuration (4.2 "http-request
    return ... file")."""
    down = f"if !{{ nbsrv({token(section_name(pool))}) gt 0 }}{guard}"
    respond = available.respond
    if respond is not None and respond.body_file is not None:
        page = f"{pages_dir}/{page_file_name(respond.body_file)}"
        return (
            f"http-request return status {respond.code} content-type "
            f"{quote(PAGE_MEDIA_TYPE)} file {quote(page)} {down}",
        )
    if respond is not None:
        return (f"{_return(respond.code, respond.body)} {down}",)
    if available.redirect is not None:
        return (f"http-request redirect location {quote_log_format(available.redirect)} {down}",)
    return ()
