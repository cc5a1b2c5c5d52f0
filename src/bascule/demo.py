"""The demo: a few tiny HTTP back ends on loopback and a virtual service in front of them.

``bascule demo`` starts the back ends (``python -m bascule.demo backend``) and the daemon in
the background, applies ``demo_document()`` through the API like any user would, and prints
the address to try. ``bascule demo --stop`` stops all of it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

# asyncio and argparse are imported by the back end itself: the CLI imports this module for
# the demo's addresses and document only.

DEMO_BACKENDS = (("127.0.0.1", 9001), ("127.0.0.1", 9002), ("127.0.0.1", 9003))
DEMO_VIP = ("127.0.0.1", 8080)


def demo_document(port: int = DEMO_VIP[1]) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "demo",
                "address": DEMO_VIP[0],
                "port": port,
                "type": "http",
                "scheduler": "weighted_round_robin",
                "check": {"type": "http", "path": "/health", "interval": 2, "rise": 2, "fall": 2},
                "real_servers": [
                    {"address": address, "port": backend_port, "weight": 1000}
                    for address, backend_port in DEMO_BACKENDS
                ],
            }
        ]
    }


async def _serve_backend(address: str, port: int, name: str) -> None:
    import asyncio

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                first = request.split(b"\r\n", 1)[0].decode("latin-1")
                path = first.split(" ")[1] if first.count(" ") >= 2 else "/"
                body = (
                    b"ok\n"
                    if path == "/health"
                    else f"Hello from {name} ({address}:{port}), served through Bascule\n".encode()
                )
                length = 0
                for line in request.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    + f"X-Server: {name}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, address, port, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(description="a demo HTTP back end for Bascule")
    parser.add_argument("command", choices=["backend"])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default=f"backend-{os.getpid()}")
    args = parser.parse_args()
    asyncio.run(_serve_backend(args.address, args.port, args.name))


if __name__ == "__main__":
    main()
