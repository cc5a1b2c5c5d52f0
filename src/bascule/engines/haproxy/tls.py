"""SSL offload -> HAProxy: bind options, crt-lists, headers, re-encryption, as frozen values.

Where this sits in the flow of a change: ``view.build_view`` asks ``listener_tls`` for the
``ssl`` options of a TLS service's ``bind`` lines and its crt-list, ``http_rules`` for the
request and response rules of an HTTPS service (the forwarded headers, the client certificate
headers, HSTS), ``server_tls`` for the re-encryption keywords of its ``server`` lines, and
``acme_rules`` and ``redirect_rule`` for the port-80 side. Pure: the paths of the store's
files come in through ``TlsPaths`` (from ``HaproxyGlobals``); the crt-list's text is returned,
and the engine's shell writes it. Section numbers refer to HAProxy 2.6's ``configuration.txt``.

The cipher sets are the model's one table (``model/tls.py: CIPHER_SETS``, OpenSSL's names,
which HAProxy takes as they are); the translation tables here are HAProxy's words for the
model's versions and client certificate modes, each tested for covering every member.

A crt-list (5.1 "crt-list") per TLS listener, not a list of ``crt``: its first line is the
default certificate (a client without SNI, or one naming a host no certificate covers), the
others follow in the document's order and are chosen by SNI from their own names. Its file
name carries a digest of its content, so checking a new configuration never rewrites the list
a running (or last good) one reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from bascule.model import VirtualService
from bascule.model.check import sni_for
from bascule.model.tls import ClientCertificate, Tls, TlsVersion, VerifyServer

# 5.1 "ssl-min-ver" / "ssl-max-ver": "SSLv3, TLSv1.0, TLSv1.1, TLSv1.2 or TLSv1.3".
VERSIONS: dict[TlsVersion, str] = {
    TlsVersion.tls1_0: "TLSv1.0",
    TlsVersion.tls1_1: "TLSv1.1",
    TlsVersion.tls1_2: "TLSv1.2",
    TlsVersion.tls1_3: "TLSv1.3",
}

# 5.1 "verify": "none", "optional" (the certificate is checked when the client gives one)
# or "required". The model's "none" asks for no certificate at all: no keyword.
CLIENT_VERIFY: dict[ClientCertificate, str | None] = {
    ClientCertificate.none: None,
    ClientCertificate.optional: "optional",
    ClientCertificate.required: "required",
}

# 5.2 "verify" on a server line.
SERVER_VERIFY: dict[VerifyServer, str] = {
    VerifyServer.none: "none",
    VerifyServer.required: "required",
}

#: 5.1 "alpn": what an HTTPS listener offers, by whether HTTP/2 is on.
ALPN_H2 = "h2,http/1.1"
ALPN_H1 = "http/1.1"

#: OpenSSL 3 refuses TLS 1.0 and 1.1 (SHA-1 signatures) at its default security level;
#: "@SECLEVEL=N" at the head of the cipher string lowers it (HAProxy 2.6 has no
#: ssl-security-level keyword). Only rendered when the service allows a version below 1.2.
LEGACY_FLOOR = TlsVersion.tls1_2

# The headers a real server of an HTTPS service receives. The client's own copies are always
# removed first (a client must not be able to claim a certificate it never showed).
FORWARDED_PROTO = "X-Forwarded-Proto"
FORWARDED_PORT = "X-Forwarded-Port"
CLIENT_VERIFY_HEADER = "X-SSL-Client-Verify"  # SUCCESS (a verified certificate) or NONE
CLIENT_DN_HEADER = "X-SSL-Client-DN"  # the subject, RFC 2253 (7.3.4 "ssl_c_s_dn")
CLIENT_ISSUER_HEADER = "X-SSL-Client-Issuer-DN"  # its issuer, RFC 2253
CLIENT_CERT_HEADER = "X-SSL-Client-Cert"  # the certificate, DER in base64 (7.3.4 "ssl_c_der")
CLIENT_HEADERS = (CLIENT_VERIFY_HEADER, CLIENT_DN_HEADER, CLIENT_ISSUER_HEADER, CLIENT_CERT_HEADER)
CLIENT_HEADER_PREFIX = "X-SSL-Client"
HSTS_HEADER = "Strict-Transport-Security"

#: The view's ``quote`` (HAProxy strong quoting, section 2.2), passed in so both use one.
QuoteFn = Callable[[str], str]

#: Where ACME's HTTP-01 challenges arrive (RFC 8555 section 8.3).
ACME_PREFIX = "/.well-known/acme-challenge/"

#: A Host header without its port (7.3.1 "regsub"): the SNI sent for ``server_sni: ""``.
HOST_WITHOUT_PORT = "req.hdr(host),regsub(:[0-9]+$,)"


@dataclass(frozen=True, kw_only=True)
class TlsPaths:
    """Where the store's files are (``<name>.pem``, ``<name>.ca.pem``) and where the engine
    writes crt-lists and the ACME challenge map (``None``: no ACME answers)."""

    certificates_dir: str
    crt_list_dir: str
    acme_map: str | None = None

    def certificate(self, name: str) -> str:
        return f"{self.certificates_dir}/{name}.pem"

    def ca_bundle(self, name: str) -> str:
        return f"{self.certificates_dir}/{name}.ca.pem"


@dataclass(frozen=True, kw_only=True)
class CrtList:
    """One crt-list file: its path and its text."""

    path: str
    text: str


@dataclass(frozen=True, kw_only=True)
class ListenerTls:
    """What a TLS listener adds to each of its ``bind`` lines, and the crt-list it reads."""

    bind_options: str
    crt_list: CrtList


def crt_list(vs: VirtualService, tls: Tls, paths: TlsPaths) -> CrtList:
    """The service's certificates, the first being the default (5.1 "crt-list")."""
    text = "".join(f"{paths.certificate(name)}\n" for name in tls.certificates)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return CrtList(path=f"{paths.crt_list_dir}/{vs.name}.{digest}.crtlist", text=text)


def listener_tls(vs: VirtualService, tls: Tls, paths: TlsPaths, *, quote: QuoteFn) -> ListenerTls:
    """The ``ssl`` options of the service's binds (5.1), from the model's cipher set."""
    profile = tls.profile
    listed = crt_list(vs, tls, paths)
    words = ["ssl", "crt-list", quote(listed.path)]
    if vs.type.reads_http:
        words += ["alpn", ALPN_H2 if tls.http2 else ALPN_H1]
    minimum = tls.effective_min_version
    words += ["ssl-min-ver", VERSIONS[minimum], "ssl-max-ver", VERSIONS[tls.max_version]]
    ciphers = list(profile.ciphers)
    if ciphers and minimum.rank < LEGACY_FLOOR.rank and profile.legacy_security_level is not None:
        ciphers.insert(0, f"@SECLEVEL={profile.legacy_security_level}")
    if ciphers:
        words += ["ciphers", quote(":".join(ciphers))]
    words += ["ciphersuites", quote(":".join(profile.ciphersuites))]
    words += ["curves", quote(":".join(profile.curves))]
    if not profile.server_preference:
        words.append("prefer-client-ciphers")
    # Mozilla's template: no session tickets (their keys would outlive forward secrecy).
    words.append("no-tls-tickets")
    verify = CLIENT_VERIFY[tls.client_certificate]
    if verify is not None:
        if tls.client_ca is None:  # the model requires it with optional or required
            raise ValueError(f"{vs.name}: client_certificate {verify} without client_ca")
        words += ["verify", verify, "ca-file", quote(paths.ca_bundle(tls.client_ca))]
    return ListenerTls(bind_options=" ".join(words), crt_list=listed)


def http_request_rules(tls: Tls) -> tuple[str, ...]:
    """What an HTTPS service tells its real servers: the scheme and port the client used and,
    with client certificates, who the client is (its copies of the headers removed first)."""
    # 4.2 "http-request del-header <name> -m beg": every header the client sent whose name
    # starts like ours, in one rule (one pass over the headers rather than one per name).
    rules = [f"http-request del-header {CLIENT_HEADER_PREFIX} -m beg"]
    rules += [
        f"http-request set-header {FORWARDED_PROTO} https",
        f"http-request set-header {FORWARDED_PORT} %[dst_port]",
    ]
    if tls.client_certificate is not ClientCertificate.none:
        used = "{ ssl_c_used }"
        rules += [
            f"http-request set-header {CLIENT_VERIFY_HEADER} SUCCESS if {used}",
            f"http-request set-header {CLIENT_VERIFY_HEADER} NONE unless {used}",
            f"http-request set-header {CLIENT_DN_HEADER} %[ssl_c_s_dn(,0,rfc2253)] if {used}",
            f"http-request set-header {CLIENT_ISSUER_HEADER} %[ssl_c_i_dn(,0,rfc2253)] if {used}",
            f"http-request set-header {CLIENT_CERT_HEADER} %[ssl_c_der,base64] if {used}",
        ]
    return tuple(rules)


def http_response_rules(tls: Tls, *, quote: QuoteFn) -> tuple[str, ...]:
    """HSTS (RFC 6797): only on the TLS listener, where a browser honours it."""
    if not tls.hsts:
        return ()
    return (f"http-response set-header {HSTS_HEADER} {quote(f'max-age={tls.hsts}')}",)


def server_tls(
    vs: VirtualService, tls: Tls, paths: TlsPaths, *, checked: bool, quote: QuoteFn
) -> tuple[str, ...]:
    """Re-encryption keywords of every server line (5.2 "ssl", "verify", "ca-file", "sni",
    "verifyhost", "check-ssl", "check-sni"); none without ``reencrypt``.

    Health checks go over TLS too (``check-ssl``), with the same verification: a real server
    whose certificate the CA does not vouch for is marked down by its check, with HAProxy's
    reason. ``server_sni: ""`` sends the client's Host (without its port); the checks, which
    have no client, send the check's Host name, or the VIP's name if it has one.
    """
    if not tls.reencrypt:
        return ()
    words = ["ssl", "verify", SERVER_VERIFY[tls.verify_server]]
    if tls.verify_server is VerifyServer.required:
        if tls.server_ca is None:  # the model requires it with verify_server required
            raise ValueError(f"{vs.name}: verify_server required without server_ca")
        words += ["ca-file", quote(paths.ca_bundle(tls.server_ca))]
    if tls.server_sni:
        words += ["sni", quote(f"str({tls.server_sni})")]
        if tls.verify_server is VerifyServer.required:
            words += ["verifyhost", quote(tls.server_sni)]
    elif vs.type.reads_http:
        words += ["sni", quote(HOST_WITHOUT_PORT)]
    if checked:
        words.append("check-ssl")
        check_sni = tls.server_sni or (sni_for(vs.check_host) if vs.check_host else None)
        if check_sni:
            words += ["check-sni", quote(check_sni)]
    return tuple(words)


def acme_rules(paths: TlsPaths) -> tuple[str, ...]:
    """Answer ACME's HTTP-01 challenges from the engine's map, before anything else; a token
    the map does not hold goes on to the service (a site may run its own ACME client)."""
    if paths.acme_map is None:
        return ()
    return (
        f"http-request set-var(txn.acme) path,map({_map_argument(paths.acme_map)}) "
        f"if {{ path_beg {ACME_PREFIX} }}",
        "http-request return status 200 content-type text/plain "
        'lf-string "%[var(txn.acme)]" if { var(txn.acme) -m found }',
    )


def redirect_rule(vs: VirtualService, *, quote: QuoteFn) -> str:
    """``redirect_http``: 301 to the same host (its port replaced) and path on HTTPS (4.2
    "http-request redirect")."""
    port = "" if vs.port == 443 else f":{vs.port}"
    location = f"https://%[{HOST_WITHOUT_PORT}]{port}%[capture.req.uri]"
    return f"http-request redirect location {quote(location)} code 301"


def _map_argument(path: str) -> str:
    # A sample fetch argument (7.1) cannot be quoted inside the expression: refuse what the
    # argument parser would read as a separator rather than emit it.
    if any(character in path for character in " ,()'\"\\#$"):
        raise ValueError(f"the ACME map path {path!r} cannot be written in a sample argument")
    return path
