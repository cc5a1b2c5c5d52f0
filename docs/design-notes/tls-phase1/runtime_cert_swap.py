"""Proof: HAProxy 2.6 replaces and adds certificates at runtime, without a reload.

Run as any user with Bascule's venv (needs haproxy on PATH):

    .venv/bin/python docs/design-notes/tls-phase1/runtime_cert_swap.py

On loopback only. HAProxy runs in master-worker mode with a crt-list of one certificate
(a.test, default). The script then
  1. replaces a.pem with `set ssl cert` + `commit ssl cert`, through a keep-alive TLS
     connection opened before the swap (it must keep working), and checks that a new
     client sees the new serial while the worker PID is unchanged;
  2. adds b.pem, which did not exist when HAProxy started, with `new ssl cert`,
     `set ssl cert`, `commit ssl cert`, `add ssl crt-list` (an SNI filter in the payload),
     and checks that SNI b.test gets it and SNI a.test still gets a.pem;
  3. shows `show ssl crt-list -n` and `show ssl cert`.
"""

from __future__ import annotations

import datetime
import shutil
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


def make_pem(name: str) -> tuple[bytes, int]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, cert.serial_number


def runtime(sock: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode()


def payload(pem: bytes) -> str:
    # An empty line ends a payload (management.txt, "set ssl cert"): PEM has none.
    return pem.decode().strip()


def served_serial(port: int, sni: str) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port)) as raw, context.wrap_socket(
        raw, server_hostname=sni
    ) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bascule-swap-"))
    port = free_port()
    a_pem, a_serial = make_pem("a.test")
    (work / "a.pem").write_bytes(a_pem)
    (work / "a.pem").chmod(0o600)
    (work / "list.txt").write_text(f"{work}/a.pem\n")
    admin, master = work / "admin.sock", work / "master.sock"
    (work / "haproxy.cfg").write_text(
        f"""global
    stats socket {admin} mode 600 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend https
    bind 127.0.0.1:{port} ssl crt-list {work}/list.txt alpn h2,http/1.1
    http-request return status 200 content-type text/plain lf-string "ok %[ssl_fc_sni]\\n"
"""
    )
    haproxy = subprocess.Popen(
        ["haproxy", "-W", "-S", str(master), "-f", str(work / "haproxy.cfg")]
    )
    try:
        wait_for(lambda: admin.exists() and served_serial(port, "a.test") == a_serial, "haproxy")
        pid_before = runtime(admin, "show info").split("Pid: ")[1].split()[0]
        print("worker pid", pid_before, "serves a.test serial", f"{a_serial:X}")

        # A keep-alive connection opened before the swap.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        kept = context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="a.test")
        kept.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        print("in-flight connection, before:", kept.recv(4096).split(b"\r\n")[0].decode())

        # 1. replace a.pem in place
        new_a, new_a_serial = make_pem("a.test")
        print(runtime(admin, f"set ssl cert {work}/a.pem <<\n{payload(new_a)}\n").strip())
        print(runtime(admin, f"commit ssl cert {work}/a.pem").strip())
        kept.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        print("in-flight connection, after:", kept.recv(4096).split(b"\r\n")[0].decode())
        kept.close()
        seen = served_serial(port, "a.test")
        pid_after = runtime(admin, "show info").split("Pid: ")[1].split()[0]
        print("a.test now serial", f"{seen:X}", "expected", f"{new_a_serial:X}", "pid", pid_after)
        assert seen == new_a_serial and pid_after == pid_before

        # 2. add b.pem, unknown at start, with an SNI filter
        b_pem, b_serial = make_pem("b.test")
        print(runtime(admin, f"new ssl cert {work}/b.pem").strip())
        print(runtime(admin, f"set ssl cert {work}/b.pem <<\n{payload(b_pem)}\n").strip())
        print(runtime(admin, f"commit ssl cert {work}/b.pem").strip())
        print(runtime(admin, f"add ssl crt-list {work}/list.txt <<\n{work}/b.pem b.test\n").strip())
        seen_b, seen_a = served_serial(port, "b.test"), served_serial(port, "a.test")
        unknown = served_serial(port, "nobody.test")
        print("b.test serial", f"{seen_b:X}", "a.test serial", f"{seen_a:X}", "unknown SNI", f"{unknown:X}")
        assert seen_b == b_serial and seen_a == new_a_serial and unknown == new_a_serial
        assert runtime(admin, "show info").split("Pid: ")[1].split()[0] == pid_before

        # 3. what HAProxy now holds (nothing of this is on disk: a reload would lose it)
        print(runtime(admin, f"show ssl crt-list -n {work}/list.txt"))
        print(runtime(admin, "show ssl cert"))
        print("OK: replaced and added at runtime; worker pid", pid_before, "unchanged")
    finally:
        haproxy.terminate()
        haproxy.wait(10)
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
