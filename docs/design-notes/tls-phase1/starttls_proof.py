"""Proof: server-side STARTTLS (SMTP, IMAP, POP3) by stunnel4 and by nginx's mail module, both in
front of a loopback HAProxy that schedules and health-checks the plain real servers.

    .venv/bin/python docs/design-notes/tls-phase1/starttls_proof.py   (needs aiosmtpd)

Loopback only. For each protocol two plain real servers (rs1, rs2: tests/tools/mail_servers.py) sit behind
one HAProxy TCP listener (balance roundrobin, HAProxy's smtpchk / tcp-check). In front of it:

    stunnel4   :8025 smtp, :8143 imap, :8110 pop3  (protocol = smtp|imap|pop3, connect = HAProxy)
    nginx mail :9025 smtp, :9143 imap, :9110 pop3  (starttls only; auth_http answered by HAProxy
                                                    with Auth-Server/Auth-Port = HAProxy)

Each front is used by Python's own clients (smtplib, imaplib, poplib: STARTTLS, then a mail, a
login) twice, to see round robin, and by `openssl s_client -starttls <proto>`. Then rs1's SMTP
server stops, HAProxy's check marks it DOWN, and both fronts send every mail to rs2.
"""

from __future__ import annotations

import datetime
import imaplib
import poplib
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = Path(__file__).parent
REAL = {"smtp": (2525, 2526), "imap": (1143, 1144), "pop3": (1110, 1111)}
HAPROXY = {"smtp": 10025, "imap": 10143, "pop3": 10110}
STUNNEL = {"smtp": 8025, "imap": 8143, "pop3": 8110}
NGINX = {"smtp": 9025, "imap": 9143, "pop3": 9110}
AUTH_HTTP = 19000


def certificate(work: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.test")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("mail.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for path, data in (("cert.pem", cert_pem), ("key.pem", key_pem), ("combined.pem", cert_pem + key_pem)):
        (work / path).write_bytes(data)
        (work / path).chmod(0o600)


def configs(work: Path) -> None:
    admin = work / "admin.sock"
    checks = {
        "smtp": "    option smtpchk EHLO bascule.check\n",
        "imap": "    option tcp-check\n    tcp-check expect string \"* OK\"\n",
        "pop3": "    option tcp-check\n    tcp-check expect string \"+OK\"\n",
    }
    haproxy = f"""global
    stats socket {admin} mode 600 level admin
defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend mail_auth
    # nginx's auth_http: always OK, always "the HAProxy listener of this protocol"
    mode http
    bind 127.0.0.1:{AUTH_HTTP}
"""
    for proto, port in HAPROXY.items():
        haproxy += (
            f"    http-request return status 200 hdr Auth-Status OK hdr Auth-Server 127.0.0.1 "
            f"hdr Auth-Port {port} if {{ req.hdr(Auth-Protocol) -m str {proto} }}\n"
        )
    for proto, port in HAPROXY.items():
        first, second = REAL[proto]
        haproxy += f"""listen {proto}
    mode tcp
    bind 127.0.0.1:{port}
    balance roundrobin
{checks[proto]}    default-server check inter 500ms fall 2 rise 2
    server rs1 127.0.0.1:{first}
    server rs2 127.0.0.1:{second}
"""
    (work / "haproxy.cfg").write_text(haproxy)

    stunnel = "foreground = yes\npid =\n"
    for proto, port in STUNNEL.items():
        stunnel += f"""[{proto}]
accept = 127.0.0.1:{port}
connect = 127.0.0.1:{HAPROXY[proto]}
cert = {work}/combined.pem
protocol = {proto}
sslVersionMin = TLSv1.2
"""
    (work / "stunnel.conf").write_text(stunnel)

    (work / "nginx.conf").write_text(f"""load_module /usr/lib/nginx/modules/ngx_mail_module.so;
pid {work}/nginx.pid;
error_log {work}/nginx.err info;
daemon off;
events {{ }}
mail {{
    server_name mail.test;
    auth_http 127.0.0.1:{AUTH_HTTP}/auth;
    proxy_pass_error_message on;
    ssl_certificate {work}/cert.pem;
    ssl_certificate_key {work}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    starttls only;
    server {{ listen 127.0.0.1:{NGINX['smtp']}; protocol smtp; smtp_auth none; xclient off; }}
    server {{ listen 127.0.0.1:{NGINX['imap']}; protocol imap; }}
    server {{ listen 127.0.0.1:{NGINX['pop3']}; protocol pop3; }}
}}
""")


def open_ports(*ports: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"nothing listens on {port}") from None
                time.sleep(0.05)


def runtime(sock: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        return b"".join(iter(lambda: s.recv(65536), b"")).decode()


CONTEXT = ssl._create_unverified_context()  # noqa: S323 (a self-signed test certificate)


def smtp(port: int) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        before = client.ehlo()[1].decode().replace("\n", " ")
        client.starttls(context=CONTEXT)
        version = client.sock.version()  # type: ignore[union-attr]
        client.ehlo()
        client.mail("a@example.test")
        client.rcpt("b@example.test")
        code, answer = client.data(b"Subject: proof\r\n\r\nbody\r\n")
        return f"before TLS EHLO: [{before}]; {version}; DATA -> {code} {answer.decode()}"


def imap(port: int) -> str:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    greeting = client.welcome.decode()
    client.starttls(ssl_context=CONTEXT)
    version = client.sock.version()  # type: ignore[attr-defined]
    _, login = client.login("user", "password")
    client.logout()
    return f"greeting: [{greeting}]; {version}; LOGIN -> {login[0].decode()}"


def pop3(port: int) -> str:
    client = poplib.POP3("127.0.0.1", port, timeout=10)
    greeting = client.getwelcome().decode()
    client.stls(context=CONTEXT)
    version = client.sock.version()  # type: ignore[attr-defined]
    client.user("user")
    answer = client.pass_("password").decode()
    client.quit()
    return f"greeting: [{greeting}]; {version}; PASS -> {answer}"


CLIENTS = {"smtp": smtp, "imap": imap, "pop3": pop3}
S_CLIENT_INPUT = {
    "smtp": "EHLO client\nMAIL FROM:<a@example.test>\nRCPT TO:<b@example.test>\nDATA\nSubject: s\n\nbody\n.\nQUIT\n",
    "imap": "a1 LOGIN user password\na2 LOGOUT\n",
    "pop3": "USER user\nPASS password\nQUIT\n",
}


def s_client(proto: str, port: int) -> str:
    done = subprocess.run(
        ["openssl", "s_client", "-starttls", proto, "-connect", f"127.0.0.1:{port}", "-crlf",
         "-quiet", "-verify_quiet", "-ign_eof"],
        input=S_CLIENT_INPUT[proto].encode(), capture_output=True, timeout=10, check=False,
    )
    lines = done.stdout.replace(b"\x00", b"").decode(errors="replace").splitlines()
    return " | ".join(line.strip() for line in lines if line.strip())


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bascule-starttls-"))
    processes: dict[str, subprocess.Popen[bytes]] = {}
    log = open(work / "processes.log", "wb")  # noqa: SIM115
    try:
        certificate(work)
        configs(work)
        for proto, ports in REAL.items():
            for index, port in enumerate(ports, start=1):
                processes[f"{proto}-rs{index}"] = subprocess.Popen(
                    [sys.executable, str(HERE.parents[2] / "tests" / "tools" / "mail_servers.py"), proto, "127.0.0.1", str(port), f"rs{index}"],
                    stdout=log, stderr=subprocess.STDOUT)
        processes["haproxy"] = subprocess.Popen(["haproxy", "-W", "-f", str(work / "haproxy.cfg")], stdout=log, stderr=subprocess.STDOUT)
        processes["stunnel"] = subprocess.Popen(["stunnel4", str(work / "stunnel.conf")], stdout=log, stderr=subprocess.STDOUT)
        processes["nginx"] = subprocess.Popen(["nginx", "-e", str(work / "nginx.err"), "-c", str(work / "nginx.conf")], stdout=log, stderr=subprocess.STDOUT)
        open_ports(*(p for ports in REAL.values() for p in ports), *HAPROXY.values(), *STUNNEL.values(), *NGINX.values(), AUTH_HTTP)
        time.sleep(1.5)  # the first health checks (inter 500ms, rise 2)

        for front, ports in (("stunnel4", STUNNEL), ("nginx mail", NGINX)):
            for proto, port in ports.items():
                for attempt in (1, 2):
                    try:
                        print(f"{front} {proto} #{attempt}: {CLIENTS[proto](port)}")
                    except Exception as exc:  # noqa: BLE001 (a proof: show what failed)
                        print(f"{front} {proto} #{attempt}: FAILED {type(exc).__name__}: {exc}")
                print(f"{front} {proto} s_client: {s_client(proto, port)}")

        processes["smtp-rs1"].terminate()
        processes["smtp-rs1"].wait(5)
        deadline = time.monotonic() + 10
        while "rs1,DOWN" not in runtime(work / "admin.sock", "show servers state smtp").replace(" 0 ", ",DOWN ") and time.monotonic() < deadline:
            stat = runtime(work / "admin.sock", "show stat")
            if any(line.startswith("smtp,rs1,") and ",DOWN," in line for line in stat.splitlines()):
                break
            time.sleep(0.1)
        stat = runtime(work / "admin.sock", "show stat")
        rs1 = next(line for line in stat.splitlines() if line.startswith("smtp,rs1,"))
        print("HAProxy after rs1's SMTP server stopped:", rs1.split(",")[17], rs1.split(",")[36])
        for front, port in (("stunnel4", STUNNEL["smtp"]), ("nginx mail", NGINX["smtp"])):
            print(f"{front} smtp with rs1 down:", smtp(port), "/", smtp(port))
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
        print("--- what the real servers saw (peer addresses) ---")
        print("\n".join(l for l in (work / "processes.log").read_text().splitlines() if "rs" in l and ("from" in l)))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
