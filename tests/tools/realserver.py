"""A real server for integration tests: tiny asyncio HTTP/1.1, banner, binary and TCP servers.

Runs inside a real server's network namespace (tests/integration/netns.py starts it) and
prints "ready" on stdout once it listens. Standard library only.

Modes (`--mode`):

http (default)
    Keep-alive HTTP/1.1. Every answer carries `X-Server: <name>`, `X-Client-Address: <peer
    ip>` and, when the request had one, `X-Seen-Forwarded-For: <X-Forwarded-For>`.
    GET /               200, body "<name>\\n"
    GET /echo...        200, JSON: server, client address/port, local address/port,
                        method, path, version, headers, x_forwarded_for, body length
    GET /slow?ms=N      waits N ms, then answers like /
    GET /set-cookie?name=N  answers like /, with Set-Cookie N=<name>-<random> (default
                        APPSESSION); --tls-session-ids: TLS 1.2, no tickets (session IDs)
    GET /health         200 "up", or --health-status, or what the control file says
    GET /status/NNN     answers with status NNN
    GET /bytes?n=N      N bytes of body
    --delay-ms N delays every answer; --control FILE is read on every /health request:
    "down" -> 503, a number -> that status, anything else (or no file) -> the default.

banner
    Sends `--banner` on connect, then answers each line in the banner's protocol:
    "220 ..." (SMTP/FTP) -> "250 <name>" ("221" on QUIT); "+OK ..." (POP3) -> "+OK <name>";
    "* OK ..." (IMAP) -> "<tag> OK <name>" (BYE on LOGOUT); else -> "<name>".

binary
    Reads len(--expect-hex) bytes; if they match, sends --reply-hex, else closes. Without
    --expect-hex, sends --reply-hex on connect.

tcp-echo
    Answers every line with "<name> <peer ip>:<peer port> <line>".

    python tests/tools/realserver.py --bind 198.18.0.11 --port 80 --name rs1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REASONS = {
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
MAX_HEADER = 64 * 1024

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class BadRequest(Exception):
    """The peer sent something that is not HTTP/1.x."""


class HttpServer:
    """Answers HTTP/1.x requests on one connection after another, keep-alive included."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.name: str = args.name
        self.delay = args.delay_ms / 1000
        self.health_status: int = args.health_status
        self.control: Path | None = Path(args.control) if args.control else None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        local = writer.get_extra_info("sockname") or ("", 0)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return  # the peer closed between requests
                except asyncio.LimitOverrunError:
                    await self._send(writer, 400, b"header too large\n", {}, keep_alive=False)
                    return
                try:
                    method, target, version, headers = parse_head(head)
                    body = await read_body(reader, headers)
                except BadRequest as exc:
                    await self._send(writer, 400, f"{exc}\n".encode(), {}, keep_alive=False)
                    return
                keep_alive = wants_keep_alive(version, headers)
                status, payload, extra = await self.answer(
                    method, target, version, headers, body, peer, local
                )
                extra["X-Client-Address"] = peer[0]
                if "x-forwarded-for" in headers:
                    extra["X-Seen-Forwarded-For"] = headers["x-forwarded-for"]
                if method == "HEAD":
                    extra["Content-Length"] = str(len(payload))
                    payload = b""
                await self._send(writer, status, payload, extra, keep_alive, version)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def answer(
        self,
        method: str,
        target: str,
        version: str,
        headers: dict[str, str],
        body: bytes,
        peer: tuple[str, int],
        local: tuple[str, int],
    ) -> tuple[int, bytes, dict[str, str]]:
        url = urlsplit(target)
        query = parse_qs(url.query)
        path = url.path
        if self.delay:
            await asyncio.sleep(self.delay)
        plain = {"Content-Type": "text/plain"}
        if path.startswith("/echo"):
            doc = {
                "server": self.name,
                "client": peer[0],
                "client_port": peer[1],
                "local": local[0],
                "local_port": local[1],
                "method": method,
                "path": target,
                "version": version,
                "headers": headers,
                "x_forwarded_for": headers.get("x-forwarded-for"),
                "body_length": len(body),
            }
            return 200, (json.dumps(doc) + "\n").encode(), {"Content-Type": "application/json"}
        if path.startswith("/set-cookie"):
            # An application cookie, new at every answer (what server_cookie persistence learns).
            name = query.get("name", ["APPSESSION"])[0]
            value = f"{self.name}-{secrets.token_hex(4)}"
            return 200, f"{self.name}\n".encode(), {**plain, "Set-Cookie": f"{name}={value}"}
        if path.startswith("/slow"):
            await asyncio.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
            return 200, f"{self.name}\n".encode(), plain
        if path.startswith("/health"):
            status = self.current_health()
            text = "up" if 200 <= status < 300 else "down"
            return status, f"{text} {self.name}\n".encode(), plain
        if path.startswith("/status/"):
            status = int(path.split("/")[2])
            return status, f"{self.name} {status}\n".encode(), plain
        if path.startswith("/bytes"):
            size = int(query.get("n", ["0"])[0])
            return 200, b"x" * size, {"Content-Type": "application/octet-stream"}
        return 200, f"{self.name}\n".encode(), plain

    def current_health(self) -> int:
        if self.control is None:
            return self.health_status
        try:
            word = self.control.read_text().strip().lower()
        except OSError:
            return self.health_status
        if word == "down":
            return 503
        if word.isdigit():
            return int(word)
        return self.health_status

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: bytes,
        extra: dict[str, str],
        keep_alive: bool,
        version: str = "HTTP/1.1",
    ) -> None:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"X-Server: {self.name}"]
        extra.setdefault("Content-Length", str(len(payload)))
        lines += [f"{key}: {value}" for key, value in extra.items()]
        if not keep_alive:
            lines.append("Connection: close")
        elif version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Request line and headers (lower-case names; repeated headers joined with ", ")."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(f"bad header line {line!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return parts[0], parts[1], parts[2], headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError as exc:
                raise BadRequest("bad chunk size") from exc
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if not length:
        return b""
    if not length.isdigit():
        raise BadRequest("bad Content-Length")
    return await reader.readexactly(int(length))


def wants_keep_alive(version: str, headers: dict[str, str]) -> bool:
    tokens = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def banner_reply(banner: str, line: str, name: str) -> tuple[str, bool]:
    """(answer, close afterwards) for one line of a banner-protocol session."""
    command = line.split(" ", 1)[0].upper()
    if banner.startswith("220"):  # SMTP, FTP
        return ("221 Bye", True) if command == "QUIT" else (f"250 {name}", False)
    if banner.startswith("+OK"):  # POP3
        return ("+OK bye", True) if command == "QUIT" else (f"+OK {name}", False)
    if banner.startswith("* OK"):  # IMAP: "<tag> <command>"
        tag, _, rest = line.partition(" ")
        if rest.split(" ", 1)[0].upper() == "LOGOUT":
            return (f"* BYE {name}\r\n{tag} OK LOGOUT completed", True)
        return (f"{tag} OK {name}", False)
    return (name, False)


def make_line_handler(args: argparse.Namespace) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        try:
            if args.mode == "banner":
                writer.write(f"{args.banner}\r\n".encode())
                await writer.drain()
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                line = raw.decode("latin-1").rstrip("\r\n")
                if args.delay_ms:
                    await asyncio.sleep(args.delay_ms / 1000)
                if args.mode == "banner":
                    answer, close = banner_reply(args.banner, line, args.name)
                    writer.write(f"{answer}\r\n".encode())
                else:
                    close = False
                    writer.write(f"{args.name} {peer[0]}:{peer[1]} {line}\n".encode())
                await writer.drain()
                if close:
                    return
        except ConnectionError:
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return handle


def make_binary_handler(args: argparse.Namespace) -> Handler:
    expect = bytes.fromhex(args.expect_hex or "")
    reply = bytes.fromhex(args.reply_hex or "")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not expect:
                writer.write(reply)
                await writer.drain()
            while expect:
                try:
                    got = await reader.readexactly(len(expect))
                except asyncio.IncompleteReadError:
                    return
                if got != expect:
                    return
                writer.write(reply)
                await writer.drain()
            # Without an expectation: keep the connection until the peer closes it.
            while await reader.read(65536):
                pass
        except ConnectionError:
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return handle


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bind", default="0.0.0.0", help="an address, or several: a,b")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--name", required=True)
    parser.add_argument("--mode", choices=["http", "banner", "binary", "tcp-echo"], default="http")
    parser.add_argument("--delay-ms", type=int, default=0, help="delay before every answer")
    parser.add_argument("--health-status", type=int, default=200, help="status of /health")
    parser.add_argument("--control", help="file read on /health: 'down', a status, or else")
    parser.add_argument("--banner", default="220 smtp.example ESMTP")
    parser.add_argument("--expect-hex", default="")
    parser.add_argument("--reply-hex", default="")
    parser.add_argument("--tls-cert", help="serve TLS with this PEM certificate chain")
    parser.add_argument("--tls-key", help="... and this PEM key")
    parser.add_argument(
        "--tls-session-ids",
        action="store_true",
        help="TLS 1.2 without tickets: sessions resume by session ID (cached by this server)",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    handler: Handler
    if args.mode == "http":
        handler = HttpServer(args).handle
    elif args.mode == "binary":
        handler = make_binary_handler(args)
    else:
        handler = make_line_handler(args)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_session_ids:
            tls.maximum_version = ssl.TLSVersion.TLSv1_2
            tls.options |= ssl.OP_NO_TICKET
    server = await asyncio.start_server(
        handler,
        args.bind.split(","),
        args.port,
        reuse_address=True,
        backlog=1024,
        limit=MAX_HEADER,
        ssl=tls,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"realserver {args.name}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
