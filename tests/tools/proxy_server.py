"""A real server that expects the PROXY protocol (v1 or v2) before each HTTP/1.x request.

For the integration tests of ``proxy_protocol`` (tests/integration/test_l7_proxy_protocol.py):
every connection must start with a PROXY header (haproxy's proxy-protocol.txt); the answer's
body is "<version> <source address>" ("v2 local" for a v2 LOCAL header, which health checks
send), and the connection is closed. A connection without a header is closed unanswered.
Prints "ready" once it listens. Standard library only.

    python tests/tools/proxy_server.py --bind 198.18.0.11 --port 8100
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


async def read_header(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    first = await reader.readexactly(12)
    if first == V2_SIGNATURE:
        version_command, family, length = struct.unpack("!BBH", await reader.readexactly(4))
        payload = await reader.readexactly(length)
        if version_command & 0x0F == 0:  # LOCAL: the proxy's own connection (a health check)
            return "v2", "local"
        if family >> 4 == 1:  # AF_INET
            return "v2", str(ipaddress.IPv4Address(payload[:4]))
        if family >> 4 == 2:  # AF_INET6
            return "v2", str(ipaddress.IPv6Address(payload[:16]))
        return "v2", "unknown"
    if first.startswith(b"PROXY "):
        line = first + await reader.readuntil(b"\r\n")
        words = line.decode("ascii").split()
        return "v1", words[2] if len(words) > 2 and words[1] != "UNKNOWN" else "unknown"
    return None


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        header = await read_header(reader)
        if header is not None:
            await reader.readuntil(b"\r\n\r\n")
            body = f"{header[0]} {header[1]}\n".encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    server = await asyncio.start_server(serve, args.bind, args.port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
