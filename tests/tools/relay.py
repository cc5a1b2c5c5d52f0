"""A byte relay between a TCP port and a unix socket, to reach a namespaced listener.

The daemon's HTTPS listener is 127.0.0.1:8443 *inside* the test topology's `lb` namespace;
the browser and the security tests run in the root namespace. Unix sockets are not
network-namespaced, so two relays bridge them (tests/integration/https_access.py starts both):

    root ns: relay.py --listen-tcp 127.0.0.1:0 --connect-unix /tmp/x/https.sock
    lb ns:   relay.py --listen-unix /tmp/x/https.sock --connect-tcp 127.0.0.1:8443

Bytes pass through untouched (TLS ends at the daemon). Prints "ready" on stdout once it
listens, preceded by "port N" for a TCP listener. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable

Connect = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _relay(
    connect: Connect, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        upstream_reader, upstream_writer = await connect()
    except OSError:
        writer.close()
        return
    try:
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
    finally:
        for end in (writer, upstream_writer):
            end.close()
            with contextlib.suppress(ConnectionError, OSError):
                await end.wait_closed()


async def _main(args: argparse.Namespace) -> None:
    if args.connect_tcp is not None:
        host, port = args.connect_tcp

        def connect() -> Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
            return asyncio.open_connection(host, port)
    else:
        path = args.connect_unix

        def connect() -> Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
            return asyncio.open_unix_connection(path)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _relay(connect, reader, writer)

    if args.listen_tcp is not None:
        host, port = args.listen_tcp
        server = await asyncio.start_server(handle, host, port)
        print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    else:
        server = await asyncio.start_unix_server(handle, args.listen_unix)
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    listen = parser.add_mutually_exclusive_group(required=True)
    listen.add_argument("--listen-tcp", type=_host_port, metavar="HOST:PORT")
    listen.add_argument("--listen-unix", metavar="PATH")
    connect = parser.add_mutually_exclusive_group(required=True)
    connect.add_argument("--connect-tcp", type=_host_port, metavar="HOST:PORT")
    connect.add_argument("--connect-unix", metavar="PATH")
    asyncio.run(_main(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
