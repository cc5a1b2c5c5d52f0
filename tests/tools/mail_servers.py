"""Plain mail real servers for the STARTTLS tests: SMTP (aiosmtpd), and IMAP and POP3 stubs.

    python tests/tools/mail_servers.py smtp 198.18.0.11 25 rs1
    python tests/tools/mail_servers.py imap 198.18.0.11 143 rs1
    python tests/tools/mail_servers.py pop3 198.18.0.11 110 rs1

Each answers with its name (rs1, rs2...) so a client sees which real server it reached, prints
"ready" once it listens (tests/integration/netns.py waits for it), then the peer address of
each connection (what the real server sees as the client). The load balancer's STARTTLS front
upgrades the client's session; these servers speak the protocols without TLS.
"""

from __future__ import annotations

import asyncio
import sys


async def imap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    print(name, "imap connection from", writer.get_extra_info("peername"), flush=True)
    writer.write(f"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] {name} ready\r\n".encode())
    while line := await reader.readline():
        # A synchronizing literal {n} (RFC 3501 4.3), as nginx sends LOGIN: "+" then n bytes.
        while line.rstrip().endswith(b"}") and b"{" in line:
            size = int(line.rstrip()[line.rindex(b"{") + 1 : -1])
            writer.write(b"+ go ahead\r\n")
            await writer.drain()
            head = line[: line.rindex(b"{")]
            line = head + await reader.readexactly(size) + await reader.readline()
        tag, _, rest = line.decode().strip().partition(" ")
        command = rest.split(" ")[0].upper()
        if command == "CAPABILITY":
            writer.write(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n".encode())
        elif command == "LOGIN":
            writer.write(f"{tag} OK logged in at {name}\r\n".encode())
        elif command == "LOGOUT":
            writer.write(f"* BYE {name}\r\n{tag} OK bye\r\n".encode())
            break
        else:
            writer.write(f"{tag} OK {command} at {name}\r\n".encode())
        await writer.drain()
    writer.close()


async def pop3(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    print(name, "pop3 connection from", writer.get_extra_info("peername"), flush=True)
    writer.write(f"+OK {name} POP3 ready\r\n".encode())
    while line := await reader.readline():
        command = line.decode().strip().split(" ")[0].upper()
        if command == "CAPA":
            writer.write(b"+OK\r\nUSER\r\n.\r\n")
        elif command == "QUIT":
            writer.write(f"+OK {name} bye\r\n".encode())
            break
        else:
            writer.write(f"+OK {command} at {name}\r\n".encode())
        await writer.drain()
    writer.close()


async def serve(kind: str, host: str, port: int, name: str) -> None:
    if kind == "smtp":
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Sink

        class Named(Sink):
            async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
                print(name, "received mail from", session.peer, envelope.mail_from, flush=True)
                return f"250 queued at {name}"

        controller = Controller(
            Named(), hostname=host, port=port, server_hostname=name, ident=f"{name} aiosmtpd"
        )
        controller.start()
        print("ready", flush=True)
        await asyncio.Event().wait()
    handler = imap if kind == "imap" else pop3
    server = await asyncio.start_server(lambda r, w: handler(r, w, name), host, port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
