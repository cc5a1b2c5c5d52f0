"""Health checks as HAProxy runs them: proxy directives and the keywords of every server line.

``CHECKS`` is HAProxy's translation of the model's check types (``model/capabilities.py``
holds their facts: default port, banner, Host header); the view (``view.py``) puts the result
in each proxy. Pure. Section numbers refer to HAProxy 2.6's ``configuration.txt``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bascule.engines.haproxy.quoting import quote, quote_log_format, token
from bascule.model import CheckType, HealthCheck, VirtualService
from bascule.model.check import sni_for


@dataclass(frozen=True, kw_only=True)
class HealthCheckView:
    """A health check: proxy-level directives and the keywords added to every server line."""

    directives: tuple[str, ...] = ()
    server_keywords: tuple[str, ...] = ()


def haproxy_time(seconds: float) -> str:
    """A duration as HAProxy writes it (2.4 "Time format"): whole seconds as ``2s``, anything
    finer in milliseconds (``500ms``, ``1500ms``): HAProxy reads no decimal point."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def health_check_view(vs: VirtualService) -> HealthCheckView:
    """The health check of a virtual service as proxy directives and server keywords."""
    check = vs.check
    if check.type is CheckType.none:
        return HealthCheckView()
    translate = CHECKS.get(check.type)
    if translate is None:
        raise ValueError(f"check type {check.type.value} has no HAProxy translation")
    # 5.2 "check", "inter", "rise", "fall", "port"; 4.2 "timeout check".
    keywords = ["check", "inter", haproxy_time(check.interval), "rise", str(check.rise)]
    keywords += ["fall", str(check.fall)]
    if check.port is not None:
        keywords += ["port", str(check.port)]
    own = translate(vs)
    return HealthCheckView(
        directives=(f"timeout check {haproxy_time(check.timeout)}", *own.directives),
        server_keywords=(*keywords, *own.server_keywords),
    )


def _connect(vs: VirtualService) -> HealthCheckView:
    # 5.2 "check": a TCP connection is enough, no directive
    return HealthCheckView()


def _http(vs: VirtualService) -> HealthCheckView:
    check = vs.check
    # 4.2 "http-check send": "uri" and "body" are plain strings; each "hdr" value is a
    # log-format string (hence quote_log_format); the header name is plain. HTTP/1.1 needs a
    # Host header, which HAProxy does not add by itself.
    send = [
        "http-check send",
        f"meth {check.method.value}",
        f"uri {quote(check.path)}",
        "ver HTTP/1.1",
        f"hdr Host {quote_log_format(_host(vs))}",
    ]
    send += [f"hdr {quote(name)} {quote_log_format(value)}" for name, value in _headers(check)]
    if check.post_data:
        send.append(f"body {quote(check.post_data)}")
    # 4.2 "http-check expect status": "a comma-separated list of status codes or range
    # codes"; a second expect rule is evaluated on the same response.
    statuses = ",".join(str(r) for r in check.status_ranges)
    lines = ["option httpchk", " ".join(send), f"http-check expect status {statuses}"]
    if check.expect_body is not None:
        lines.append(f"http-check expect rstring {quote(check.expect_body)}")
    return HealthCheckView(directives=tuple(lines))


def _https(vs: VirtualService) -> HealthCheckView:
    if vs.tls is not None and vs.tls.reencrypt:
        # the servers' traffic is ciphered too: the check goes over TLS with the same
        # verification as the traffic (tls.server_tls)
        return HealthCheckView(directives=_http(vs).directives)
    # 5.2 "check-ssl", "verify", "check-sni". Only the check is ciphered (no "ssl"), and a
    # health check has no CA to verify against.
    keywords = ["check-ssl", "verify", "none"]
    sni = sni_for(_host(vs))
    if sni is not None:
        keywords += ["check-sni", quote(sni)]
    return HealthCheckView(directives=_http(vs).directives, server_keywords=tuple(keywords))


def _host(vs: VirtualService) -> str:
    host = vs.check_host
    if host is None:  # the model gives every http and https check one
        raise ValueError(f"an {vs.check.type.value} check needs a Host header")
    return host


def _smtp(vs: VirtualService) -> HealthCheckView:
    return HealthCheckView(directives=("option smtpchk",))  # 4.2: "HELO localhost", expects 2xx


def _ldap(vs: VirtualService) -> HealthCheckView:
    return HealthCheckView(directives=("option ldap-check",))  # 4.2: LDAPv3 anonymous bind


def _banner(vs: VirtualService) -> HealthCheckView:
    # 4.2 "option tcp-check": an expect-only ruleset tests the banner (an implicit connect
    # opens it).
    banner = vs.check.type.banner
    if banner is None:
        raise ValueError(f"check type {vs.check.type.value} has no banner")
    return HealthCheckView(
        directives=("option tcp-check", f"tcp-check expect rstring {quote(banner)}")
    )


def _binary(vs: VirtualService) -> HealthCheckView:
    check = vs.check
    directives = ["option tcp-check"]
    if check.send_hex:
        directives.append(f"tcp-check send-binary {token(check.send_hex)}")
    if check.expect_hex:
        directives.append(f"tcp-check expect binary {token(check.expect_hex)}")
    return HealthCheckView(directives=tuple(directives))


def _headers(check: HealthCheck) -> tuple[tuple[str, str], ...]:
    for name, value in check.headers.items():
        # HAProxy silently drops a check header whose value is empty (and refuses '' as an
        # argument), so an empty value cannot be honoured.
        if not value:
            raise ValueError(f"check header {name!r} has an empty value")
    return tuple(check.headers.items())


# How HAProxy runs each check type the model allows on l7 (all but none, which is no check):
# its directives in the section and its keywords on every server line.
CHECKS: dict[CheckType, Callable[[VirtualService], HealthCheckView]] = {
    CheckType.tcp: _connect,
    CheckType.http: _http,
    CheckType.https: _https,
    CheckType.smtp: _smtp,
    CheckType.ftp: _banner,
    CheckType.pop3: _banner,
    CheckType.imap: _banner,
    CheckType.ldap: _ldap,
    CheckType.binary: _binary,
}
