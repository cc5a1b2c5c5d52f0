"""A STARTTLS mail client for integration tests: one session, prints ONE JSON object.

Runs inside the client namespace, standard library only (smtplib, imaplib, poplib):

    python tests/tools/mail_client.py smtp 198.18.0.100 25
        {"ok": true, "server": "rs1", "version": "TLSv1.3", "serial": "4B33...",
         "before_tls": "...", "answer": "250 queued at rs1"}

The session upgrades with STARTTLS (STLS for POP3), then sends a mail (SMTP) or logs in
(IMAP, POP3); the real server names itself in its answer (tests/tools/mail_servers.py).
"""

from __future__ import annotations

import imaplib
import json
import poplib
import re
import smtplib
import ssl
import sys
from typing import Any

from cryptography import x509

CONTEXT = ssl._create_unverified_context()  # the test self-signs its certificate
NAMED = re.compile(r"\b(rs\d+)\b")


def serial_of(sock: Any) -> str:
    der = sock.getpeercert(binary_form=True)
    return f"{x509.load_der_x509_certificate(der).serial_number:X}"


def smtp(host: str, port: int) -> dict[str, Any]:
    with smtplib.SMTP(host, port, timeout=10) as client:
        before = client.ehlo()[1].decode().replace("\n", " ")
        client.starttls(context=CONTEXT)
        result = {"version": client.sock.version(), "serial": serial_of(client.sock)}  # type: ignore[union-attr]
        client.ehlo()
        client.mail("a@example.test")
        client.rcpt("b@example.test")
        code, answer = client.data(b"Subject: test\r\n\r\nbody\r\n")
        return {**result, "before_tls": before, "answer": f"{code} {answer.decode()}"}


def imap(host: str, port: int) -> dict[str, Any]:
    client = imaplib.IMAP4(host, port, timeout=10)
    before = client.welcome.decode()
    client.starttls(ssl_context=CONTEXT)
    result = {"version": client.sock.version(), "serial": serial_of(client.sock)}  # type: ignore[attr-defined]
    _, login = client.login("user", "password")
    client.logout()
    return {**result, "before_tls": before, "answer": login[0].decode()}


def pop3(host: str, port: int) -> dict[str, Any]:
    client = poplib.POP3(host, port, timeout=10)
    before = client.getwelcome().decode()
    client.stls(context=CONTEXT)
    result = {"version": client.sock.version(), "serial": serial_of(client.sock)}  # type: ignore[attr-defined]
    client.user("user")
    answer = client.pass_("password").decode()
    client.quit()
    return {**result, "before_tls": before, "answer": answer}


def main(argv: list[str]) -> int:
    kind, host, port = argv[0], argv[1], int(argv[2])
    session = {"smtp": smtp, "imap": imap, "pop3": pop3}[kind]
    try:
        result = session(host, port)
    except (OSError, smtplib.SMTPException, imaplib.IMAP4.error, poplib.error_proto) as exc:
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        return 0
    named = NAMED.search(result["answer"])
    print(json.dumps({"ok": True, "server": named[1] if named else None, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
