"""Proof: a certificate from Debian's pebble over HTTP-01, answered by HAProxy from a map that
is filled at runtime, in two network namespaces. Run as root with Bascule's venv (plus `acme`):

    .venv/bin/python docs/design-notes/tls-phase1/acme_pebble.py

Topology (198.18.0.0/15 only, removed at the end even on failure):

    ns "<id>-lb"  198.18.0.100  HAProxy: port 80 answers /.well-known/acme-challenge/ from
         | veth                 acme.map (empty at start), port 443 serves what we get;
         |                      the ACME client (certbot's `acme` library) runs here too
    ns "<id>-ca"  198.18.0.50   pebble :14000 (its own TLS certificate, made here) with
                                PEBBLE_VA_NOSLEEP=1, httpPort 80, certificateValidityPeriod
                                3600 and a domainBlocklist; pebble-challtestsrv :8053 as the
                                resolver (every A query -> 198.18.0.100), pebble -dnsserver

It orders (1) an IP identifier 198.18.0.100, (2) a DNS name shop.bascule.test, (3) the
blocked name blocked.bascule.test and prints the CA's refusal; then installs (2) into the
running HAProxy with `set ssl cert`/`commit ssl cert` and checks a client sees its serial.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
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
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

VIP, CA_ADDRESS = "198.18.0.100", "198.18.0.50"


def sh(*args: str, check: bool = True) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def directory_tls(work: Path) -> None:
    """A CA and a certificate for pebble's own HTTPS listener (Debian ships none)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "proof directory CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_ADDRESS)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(CA_ADDRESS))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (work / "directory-ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (work / "directory.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (work / "directory.key").write_bytes(pem_key(key))


def wait_for(predicate, what: str, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def listening(ns: str, port: int) -> bool:
    return f":{port} " in sh("ip", "netns", "exec", ns, "ss", "-Htln")


def runtime(sock: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:  # unix sockets are not namespaced
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode()


# -- the ACME client, run inside the lb namespace ---------------------------------------------


def client(work: Path, admin: Path) -> None:
    import josepy as jose
    from acme import challenges, client as acme_client, crypto_util, errors, messages

    account_key = jose.JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    network = acme_client.ClientNetwork(
        account_key, user_agent="bascule-proof", verify_ssl=str(work / "directory-ca.pem")  # type: ignore[arg-type]
    )
    directory = acme_client.ClientV2.get_directory(f"https://{CA_ADDRESS}:14000/dir", network)
    acme = acme_client.ClientV2(directory, net=network)
    account = acme.new_account(
        messages.NewRegistration.from_data(email="admin@bascule.test", terms_of_service_agreed=True)
    )
    print("account", account.uri)
    map_file = work / "acme.map"

    def issue(*, names: list[str], ips: list[str]) -> tuple[bytes, bytes]:
        key_pem = pem_key(ec.generate_private_key(ec.SECP256R1()))
        csr = crypto_util.make_csr(
            key_pem, domains=names or None, ipaddrs=[ipaddress.ip_address(i) for i in ips] or None
        )
        order = acme.new_order(csr)
        published = []
        for authorization in order.authorizations:
            for challenge in authorization.body.challenges:
                if isinstance(challenge.chall, challenges.HTTP01):
                    response, validation = challenge.response_and_validation(account_key)
                    path = challenge.chall.path  # /.well-known/acme-challenge/<token>
                    print(runtime(admin, f"add map {map_file} {path} {validation}").strip() or "map entry added")
                    published.append(path)
                    acme.answer_challenge(challenge, response)
        try:
            deadline = datetime.datetime.now() + datetime.timedelta(seconds=60)
            done = acme.poll_and_finalize(order, deadline)
        finally:
            for path in published:
                runtime(admin, f"del map {map_file} {path}")
        return key_pem, done.fullchain_pem.encode()

    for label, names, ips in (("IP identifier", [], [VIP]), ("DNS name", ["shop.bascule.test"], [])):
        key_pem, fullchain = issue(names=names, ips=ips)
        leaf = x509.load_pem_x509_certificate(fullchain)
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        print(f"{label}: issued serial {leaf.serial_number:X}, SAN {[str(n.value) for n in san]}, "
              f"issuer {leaf.issuer.rfc4514_string()}, lifetime {lifetime}, "
              f"{fullchain.count(b'BEGIN CERTIFICATE')} certificates in the chain")
        (work / f"issued-{label.split()[0].lower()}.pem").write_bytes(fullchain + key_pem)

    try:
        issue(names=["blocked.bascule.test"], ips=[])
    except errors.Error as exc:  # messages.Error is an acme.errors.Error
        print("refused order:", type(exc).__name__, str(exc))
    else:
        raise SystemExit("the blocked name was issued")


# -- the topology -----------------------------------------------------------------------------


def main() -> None:
    if sys.argv[1:2] == ["client"]:
        client(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    if os.geteuid() != 0:
        raise SystemExit("run as root (network namespaces)")
    ident = "acme" + secrets.token_hex(3)
    lb, ca = f"{ident}-lb", f"{ident}-ca"
    work = Path(tempfile.mkdtemp(prefix="bascule-acme-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for ns in (lb, ca):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", f"{ident}a", "netns", lb, "type", "veth", "peer", f"{ident}b", "netns", ca)
        sh("ip", "-n", lb, "addr", "add", f"{VIP}/24", "dev", f"{ident}a")
        sh("ip", "-n", ca, "addr", "add", f"{CA_ADDRESS}/24", "dev", f"{ident}b")
        sh("ip", "-n", lb, "link", "set", f"{ident}a", "up")
        sh("ip", "-n", ca, "link", "set", f"{ident}b", "up")

        directory_tls(work)
        (work / "pebble.json").write_text(json.dumps({"pebble": {
            "listenAddress": f"{CA_ADDRESS}:14000",
            "managementListenAddress": f"{CA_ADDRESS}:15000",
            "certificate": str(work / "directory.pem"),
            "privateKey": str(work / "directory.key"),
            "httpPort": 80,
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "domainBlocklist": ["blocked.bascule.test"],
            "certificateValidityPeriod": 3600,
        }}))
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        log = open(work / "pebble.log", "wb")  # noqa: SIM115
        processes.append(subprocess.Popen(
            ["ip", "netns", "exec", ca, "pebble-challtestsrv", "-dns01", f"{CA_ADDRESS}:8053",
             "-defaultIPv4", VIP, "-defaultIPv6", "", "-http01", "", "-https01", "",
             "-tlsalpn01", "", "-management", f"{CA_ADDRESS}:8055"],
            stdout=log, stderr=subprocess.STDOUT))
        processes.append(subprocess.Popen(
            ["ip", "netns", "exec", ca, "pebble", "-config", str(work / "pebble.json"),
             "-dnsserver", f"{CA_ADDRESS}:8053"],
            stdout=log, stderr=subprocess.STDOUT, env=env))

        admin = work / "admin.sock"
        (work / "acme.map").write_text("")
        # a placeholder certificate so the 443 listener exists from the start
        placeholder_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "placeholder")])
        placeholder = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(placeholder_key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(placeholder_key, hashes.SHA256())
        )
        (work / "shop.pem").write_bytes(
            placeholder.public_bytes(serialization.Encoding.PEM) + pem_key(placeholder_key))
        (work / "haproxy.cfg").write_text(f"""global
    stats socket {admin} mode 600 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend http
    bind {VIP}:80
    # ACME HTTP-01 (RFC 8555 8.3): the map holds path -> key authorization, filled at runtime
    http-request set-var(txn.acme) path,map({work}/acme.map) if {{ path_beg /.well-known/acme-challenge/ }}
    http-request return status 200 content-type text/plain lf-string "%[var(txn.acme)]" if {{ var(txn.acme) -m found }}
    http-request return status 404 content-type text/plain string "no such challenge\\n" if {{ path_beg /.well-known/acme-challenge/ }}
    http-request redirect scheme https code 301
frontend https
    bind {VIP}:443 ssl crt {work}/shop.pem
    http-request return status 200 content-type text/plain string "shop\\n"
""")
        processes.append(subprocess.Popen(
            ["ip", "netns", "exec", lb, "haproxy", "-W", "-f", str(work / "haproxy.cfg")],
            stdout=log, stderr=subprocess.STDOUT))
        wait_for(lambda: listening(ca, 14000) and listening(ca, 8053) and listening(lb, 80),
                 "pebble, its resolver and haproxy")
        pid = runtime(admin, "show info").split("Pid: ")[1].split()[0]

        subprocess.run(["ip", "netns", "exec", lb, sys.executable, __file__, "client", str(work),
                        str(admin)], check=True)

        # serve the DNS-name certificate without a reload
        issued = (work / "issued-dns.pem").read_bytes().strip().decode()
        print(runtime(admin, f"set ssl cert {work}/shop.pem <<\n{issued}\n").strip())
        print(runtime(admin, f"commit ssl cert {work}/shop.pem").strip())
        served = sh("ip", "netns", "exec", lb, "sh", "-c",
                    f"openssl s_client -connect {VIP}:443 -servername shop.bascule.test "
                    f"</dev/null 2>/dev/null | openssl x509 -noout -serial -issuer")
        expected = x509.load_pem_x509_certificate(issued.encode()).serial_number
        print("served:", served.strip().replace("\n", "; "))
        assert f"serial={expected:X}" in served.replace("serial=0", "serial="), served
        assert runtime(admin, "show info").split("Pid: ")[1].split()[0] == pid
        print(f"OK: issued over HTTP-01 from a runtime map, served without reload (worker {pid})")
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for ns in (lb, ca):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
