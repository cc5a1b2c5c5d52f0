"""Health probes: one asyncio coroutine per check type, each returning a CheckResult.

Where it sits: the checker (checker.py) calls ``run_probe(check, endpoint)`` once per
interval for every real server of an L4 service; the result feeds the rise/fall machine
(results.py). The probes read the same ``HealthCheck`` model that the HAProxy engine renders
for L7, and the same facts of each check type (``CheckType.banner``, the default Host header of
``VirtualService.check_host``), so a check means the same thing on both paths (the few
differences are noted where they are). ``PROBES`` is the translation: one probe per check type
the model allows on l4.

Contract: a probe is bounded by ``check.timeout`` (``run_probe`` enforces it) and never
raises for anything the network or the server does; refused, reset, unreachable, timed out,
garbage or a wrong answer are all a ``CheckResult(ok=False, detail=...)`` that says what
happened, for ``bascule status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import ipaddress
import os
import random
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import cast

import httpx

from bascule.health import wire
from bascule.health.results import CheckResult
from bascule.model.capabilities import CheckType
from bascule.model.check import HealthCheck, sni_for
from bascule.model.real_server import RealServer
from bascule.model.virtual_service import VirtualService
from bascule.net import icmp
from bascule.net.addresses import host_port

USER_AGENT = "bascule-health/1"
BODY_LIMIT = 4096  # expect_body looks at the first 4 KiB of a 2xx body (DESIGN.md)
READ_LIMIT = 4096  # what a conversation probe reads at most
ICMP_PAYLOAD = b"bascule health check"
# The name an smtp check gives itself, as HAProxy's smtpchk does by default ("HELO localhost").
SMTP_CLIENT_NAME = "localhost"


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """Where a probe goes: the address and port it connects to and the name it asks for.

    ``host`` is the Host header of http/https checks (and the source of their SNI): the
    check's ``host``, or the VIP as a client of the service writes it
    (``VirtualService.check_host``); None for the checks that send none.
    """

    address: str
    port: int
    host: str | None = None


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What a probe concluded, before run_probe adds the timing."""

    ok: bool
    detail: str
    code: int | None = None


Probe = Callable[[HealthCheck, Endpoint], Awaitable[Verdict]]
ProbeFunction = Callable[[HealthCheck, Endpoint], Awaitable[CheckResult]]


def endpoint_for(vs: VirtualService, rs: RealServer) -> Endpoint:
    """The endpoint that ``vs``'s check probes for real server ``rs``."""
    return Endpoint(address=rs.address, port=vs.check.port or rs.port, host=vs.check_host)


async def run_probe(
    check: HealthCheck, endpoint: Endpoint, *, probe: Probe | None = None
) -> CheckResult:
    """Probe ``endpoint`` as ``check`` says, within ``check.timeout`` seconds.

    ``probe`` replaces the probe of ``check.type`` (PROBES), e.g. to force an ICMP method.
    """
    probe = probe or PROBES.get(check.type)
    if probe is None:
        raise ValueError(f"check type {check.type.value} has no probe (nothing to check)")
    checked_at = time.time()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(check.timeout):
            verdict = await probe(check, endpoint)
    except (TimeoutError, httpx.TimeoutException):
        verdict = Verdict(ok=False, detail=f"no answer within {check.timeout}s")
    except (OSError, EOFError, httpx.HTTPError) as exc:
        verdict = Verdict(ok=False, detail=describe_error(exc))
    return CheckResult(
        ok=verdict.ok,
        code=verdict.code,
        detail=verdict.detail,
        duration_ms=(time.perf_counter() - started) * 1000,
        checked_at=checked_at,
    )


def describe_error(exc: BaseException) -> str:
    """A short phrase for a person: "connection refused", "no route to host"...

    The cause is looked for down the chain, since asyncio, anyio and httpx each wrap the
    OSError that says what happened ("Connect call failed", "All connection attempts
    failed", ConnectError).
    """
    root = _root_cause(exc)
    if isinstance(root, ssl.SSLError):
        return f"TLS error: {root.reason or root}"
    if isinstance(root, OSError) and root.errno:
        text = os.strerror(root.errno)
        return text[:1].lower() + text[1:]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    current: BaseException | None = exc
    best = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError) or (isinstance(current, OSError) and current.errno):
            best = current
        if isinstance(current, BaseExceptionGroup) and current.exceptions:
            current = current.exceptions[0]
        else:
            current = current.__cause__ or current.__context__
    return best


# -- TCP and conversations over TCP ------------------------------------------------------------


@contextlib.asynccontextmanager
async def _connection(
    endpoint: Endpoint,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(endpoint.address, endpoint.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _read_at_least(reader: asyncio.StreamReader, wanted: int) -> bytes:
    """Read until ``wanted`` bytes arrived or the peer closed (at most READ_LIMIT)."""
    data = b""
    while len(data) < wanted:
        chunk = await reader.read(READ_LIMIT - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _shown(data: bytes, limit: int = 16) -> str:
    return data[:limit].hex() + ("..." if len(data) > limit else "") if data else "nothing"


async def probe_tcp(check: HealthCheck, endpoint: Endpoint) -> Verdict:
    """A TCP connection is accepted."""
    async with _connection(endpoint):
        return Verdict(ok=True, detail="connected")


async def probe_binary(check: HealthCheck, endpoint: Endpoint) -> Verdict:
    """Send ``send_hex``; the answer must start with ``expect_hex``.

    The HAProxy engine's ``tcp-check expect binary`` finds the bytes anywhere in what it
    has read; this probe wants them first, which is stricter.
    """
    send = bytes.fromhex(check.send_hex or "")
    expect = bytes.fromhex(check.expect_hex or "")
    async with _connection(endpoint) as (reader, writer):
        if send:
            writer.write(send)
            await writer.drain()
        if not expect:
            return Verdict(ok=True, detail=f"sent {len(send)} bytes")
        got = await _read_at_least(reader, len(expect))
    if got.startswith(expect):
        return Verdict(ok=True, detail=f"got {_shown(got[: len(expect)])}")
    return Verdict(ok=False, detail=f"expected {_shown(expect)}, got {_shown(got)}")


def _banner_verdict(check: HealthCheck, line: bytes) -> Verdict:
    """Whether ``line`` is the greeting of ``check``'s protocol (``CheckType.banner``)."""
    text = line.decode("latin-1").rstrip("\r\n")
    pattern = check.type.banner
    if pattern is None:
        raise ValueError(f"check type {check.type.value} has no banner")
    if re.match(pattern, text):
        return Verdict(ok=True, detail=text[:80])
    return Verdict(ok=False, detail=f"unexpected banner {text[:80]!r}" if text else "no banner")


async def probe_banner(check: HealthCheck, endpoint: Endpoint) -> Verdict:
    """The server greets with the protocol's banner (FTP 220, POP3 +OK, IMAP * OK)."""
    async with _connection(endpoint) as (reader, _):
        line = await reader.readline()
    return _banner_verdict(check, line)


async def _smtp_reply(reader: asyncio.StreamReader) -> tuple[int | None, str]:
    """One SMTP reply (RFC 5321 4.2: "250-..." lines up to the "250 ..." one): its code, or
    None when it is not a reply, and its last line."""
    while True:
        line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
        code = line[:3]
        if len(line) < 3 or not code.isdigit() or line[3:4] not in ("", " ", "-"):
            return None, line
        if line[3:4] != "-":
            return int(code), line


async def probe_smtp(check: HealthCheck, endpoint: Endpoint) -> Verdict:
    """After the 220 banner, EHLO (then HELO if the server refuses it) is answered 2xx.

    HAProxy's ``option smtpchk`` (4.2), which the L7 engine renders, sends HELO after the
    greeting and wants a 2xx; EHLO first lets a server that insists on ESMTP pass as well,
    and HELO covers the few that know only SMTP (RFC 5321 4.1.1.1). The session ends with
    QUIT. ``code`` is the reply's; the detail of a success is the greeting, which names the
    server.
    """
    answers: list[str] = []
    code: int | None = None
    async with _connection(endpoint) as (reader, writer):
        greeting = _banner_verdict(check, await reader.readline())
        if not greeting.ok:
            return greeting
        for verb in ("EHLO", "HELO"):
            writer.write(f"{verb} {SMTP_CLIENT_NAME}\r\n".encode())
            await writer.drain()
            code, line = await _smtp_reply(reader)
            if code is not None and 200 <= code < 300:
                writer.write(b"QUIT\r\n")
                await writer.drain()
                return Verdict(ok=True, code=code, detail=greeting.detail)
            answers.append(f"{verb} answered {line[:60]!r}" if line else f"{verb} unanswered")
            if code is None:
                break  # no SMTP reply at all: a HELO would not be understood either
    return Verdict(ok=False, code=code, detail="; ".join(answers))


async def probe_ldap(check: HealthCheck, endpoint: Endpoint) -> Verdict:
    """An anonymous LDAPv3 bind succeeds (resultCode 0), as HAProxy's ldap-check."""
    async with _connection(endpoint) as (reader, writer):
        writer.write(wire.LDAP_ANONYMOUS_BIND)
        await writer.drain()
        answer = await _read_at_least(reader, 14)
    try:
        code = wire.ldap_bind_result(answer)
    except ValueError as exc:
        return Verdict(ok=False, detail=f"bad LDAP answer: {exc}")
    return Verdict(ok=code == 0, code=code, detail=f"bind resultCode {code}")


async def probe_rdp(check: HealthCheck, endpoint: Endpoint) -> Verdict:
    """The server confirms an X.224 connection request (the first step of RDP)."""
    async with _connection(endpoint) as (reader, writer):
        writer.write(wire.RDP_CONNECTION_REQUEST)
        await writer.drain()
        answer = await _read_at_least(reader, 11)
    if wire.is_rdp_connection_confirm(answer):
        return Verdict(ok=True, detail="X.224 connection confirmed")
    return Verdict(ok=False, detail=f"no X.224 connection confirm, got {_shown(answer)}")


# -- HTTP and HTTPS ---------------------------------------------------------------------------


@functools.cache
def _unverified_tls() -> ssl.SSLContext:
    # A health check has no CA to verify a real server against (the HAProxy engine says
    # "verify none" for the same reason); it checks that TLS and HTTP work.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _status_ok(check: HealthCheck, status: int) -> bool:
    return any(r.first <= status <= r.last for r in check.status_ranges)


async def probe_http(check: HealthCheck, endpoint: Endpoint) -> Verdict:
    """An HTTP(S) request gets an expected status and, if asked, a body that matches.

    Every check is a new connection (``Connection: close``), as a client would open; https
    is not verified and sends the SNI of ``endpoint.host`` when that is a name.
    """
    https = check.type is CheckType.https
    scheme = "https" if https else "http"
    url = f"{scheme}://{host_port(endpoint.address, endpoint.port)}{check.path}"
    # Without a host of the endpoint's own, httpx writes the URL's.
    headers = {"Host": endpoint.host} if endpoint.host is not None else {}
    headers |= {
        "User-Agent": USER_AGENT,
        "Accept": "*/*",
        "Accept-Encoding": "identity",
        "Connection": "close",
        **check.headers,
    }
    extensions = {}
    sni = sni_for(endpoint.host) if https and endpoint.host is not None else None
    if sni is not None:
        extensions["sni_hostname"] = sni
    content = check.post_data.encode() if check.post_data is not None else None
    async with httpx.AsyncClient(
        verify=_unverified_tls() if https else False,
        trust_env=False,  # never a proxy from the environment
        timeout=float(check.timeout),
        follow_redirects=False,
    ) as client:
        request = client.build_request(
            check.method.value, url, headers=headers, content=content, extensions=extensions
        )
        response = await client.send(request, stream=True)
        try:
            status = response.status_code
            if not _status_ok(check, status):
                return Verdict(
                    ok=False, code=status, detail=f"status {status}, expected {check.expect_status}"
                )
            if check.expect_body is not None and 200 <= status < 300:
                body = await _first_bytes(response, BODY_LIMIT)
                text = body.decode("utf-8", errors="replace")
                if re.search(check.expect_body, text) is None:
                    return Verdict(
                        ok=False, code=status, detail=f"status {status}, body does not match"
                    )
        finally:
            await response.aclose()
    return Verdict(ok=True, code=status, detail=f"status {status}")


async def _first_bytes(response: httpx.Response, limit: int) -> bytes:
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= limit:
            break
    return body[:limit]


# -- DNS over UDP ------------------------------------------------------------------------------


def dns_question(check: HealthCheck) -> tuple[str, int]:
    """What a dns check asks: the A record of ``check.host``, or else the root's NS."""
    if check.host is None:
        return ".", wire.DNS_TYPE_NS
    name = check.host.rsplit(":", 1)[0] if ":" in check.host else check.host
    return name, wire.DNS_TYPE_A


class _DnsExchange(asyncio.DatagramProtocol):
    def __init__(self, query: bytes) -> None:
        self.query = query
        self.answer: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A datagram transport, though not an instance of DatagramTransport in 3.11.
        cast(asyncio.DatagramTransport, transport).sendto(self.query)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if self.answer.done():
            return
        if data[:2] != self.query[:2]:
            return  # a late answer to an earlier query: keep waiting for ours
        try:
            rcode = wire.parse_dns_response(data, self.query)
        except ValueError as exc:
            self.answer.set_result(Verdict(ok=False, detail=f"bad DNS response: {exc}"))
            return
        name = wire.DNS_RCODES.get(rcode, str(rcode))
        self.answer.set_result(Verdict(ok=True, code=rcode, detail=f"DNS response {name}"))

    def error_received(self, exc: Exception) -> None:
        # A connected UDP socket hears ICMP errors: port unreachable means nobody listens.
        if not self.answer.done():
            self.answer.set_result(Verdict(ok=False, detail=describe_error(exc)))


async def probe_dns(check: HealthCheck, endpoint: Endpoint) -> Verdict:
    """A DNS server answers a query over UDP with a well-formed response (any RCODE).

    Any RCODE passes: REFUSED or NXDOMAIN still prove that the server is there and speaks
    DNS; ``code`` carries it for the status.
    """
    name, qtype = dns_question(check)
    query = wire.build_dns_query(random.getrandbits(16), name, qtype)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _DnsExchange(query), remote_addr=(endpoint.address, endpoint.port)
    )
    try:
        return await protocol.answer
    finally:
        transport.close()


# -- ICMP echo ---------------------------------------------------------------------------------


class IcmpMethod(enum.Enum):
    """How an echo request is sent, in the order they are tried."""

    raw = "raw"  # a raw socket: needs root (CAP_NET_RAW)
    datagram = "datagram"  # an ICMP datagram socket: net.ipv4.ping_group_range must allow us
    ping = "ping"  # the ping(8) binary, when neither socket may be opened


ICMP_METHODS = (IcmpMethod.raw, IcmpMethod.datagram, IcmpMethod.ping)


def _icmp_socket(method: IcmpMethod, v6: bool) -> socket.socket:
    family = socket.AF_INET6 if v6 else socket.AF_INET
    protocol = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    kind = socket.SOCK_RAW if method is IcmpMethod.raw else socket.SOCK_DGRAM
    sock = socket.socket(family, kind, protocol)
    sock.setblocking(False)
    return sock


async def _echo(sock: socket.socket, address: str, *, v6: bool, raw: bool) -> Verdict:
    loop = asyncio.get_running_loop()
    # A datagram socket replaces the identifier with its own and only hears its own
    # replies; a raw socket hears every ICMP message of the host and must sort them.
    ident = random.getrandbits(16) if raw else None
    sequence = random.getrandbits(16)
    request = icmp.echo(ident or 0, sequence, ICMP_PAYLOAD, v6=v6)
    target = ipaddress.ip_address(address)
    await loop.sock_sendto(sock, request, (address, 0))
    while True:
        data, source = await loop.sock_recvfrom(sock, 65535)
        # A raw IPv4 socket receives the IP header too; IPv6 and datagram sockets do not.
        try:
            message = icmp.strip_ipv4_header(data) if raw and not v6 else data
        except ValueError:
            continue
        verdict = icmp.judge_echo_reply(message, ident=ident, sequence=sequence, v6=v6)
        if verdict is None:
            continue
        if not verdict:
            return Verdict(ok=False, detail=f"ICMP error from {source[0]}")
        if ipaddress.ip_address(source[0].split("%")[0]) == target:
            return Verdict(ok=True, detail="echo reply")


async def _ping_binary(address: str, wait_seconds: int) -> Verdict:
    proc = await asyncio.create_subprocess_exec(
        "ping",
        "-n",
        "-q",
        "-c",
        "1",
        "-W",
        str(wait_seconds),
        address,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode == 0:
        return Verdict(ok=True, detail="echo reply (ping)")
    reason = stderr.decode(errors="replace").strip().splitlines()
    return Verdict(ok=False, detail=f"no echo reply (ping: {reason[-1] if reason else 'lost'})")


async def probe_icmp(
    check: HealthCheck, endpoint: Endpoint, *, methods: Sequence[IcmpMethod] = ICMP_METHODS
) -> Verdict:
    """The real server answers an ICMP echo request (the port plays no part)."""
    v6 = ipaddress.ip_address(endpoint.address).version == 6
    refused: list[str] = []
    for method in methods:
        if method is IcmpMethod.ping:
            return await _ping_binary(endpoint.address, check.timeout)
        try:
            sock = _icmp_socket(method, v6)
        except PermissionError as exc:  # no CAP_NET_RAW, or outside ping_group_range
            refused.append(f"{method.value}: {describe_error(exc)}")
            continue
        with sock:
            return await _echo(sock, endpoint.address, v6=v6, raw=method is IcmpMethod.raw)
    return Verdict(ok=False, detail="cannot send ICMP: " + "; ".join(refused))


# One probe per check type the model allows on l4 (all but none, which is no check).
PROBES: dict[CheckType, Probe] = {
    CheckType.tcp: probe_tcp,
    CheckType.http: probe_http,
    CheckType.https: probe_http,
    CheckType.icmp: probe_icmp,
    CheckType.dns: probe_dns,
    CheckType.binary: probe_binary,
    CheckType.smtp: probe_smtp,
    CheckType.ftp: probe_banner,
    CheckType.pop3: probe_banner,
    CheckType.imap: probe_banner,
    CheckType.ldap: probe_ldap,
    CheckType.rdp: probe_rdp,
}
