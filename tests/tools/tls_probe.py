"""A TLS client for integration tests: one handshake, or every cipher tried; prints ONE JSON.

Runs inside the client namespace, standard library only (ssl, socket), plus ``openssl
s_client`` for TLS 1.3 suites (Python's ssl cannot choose them).

    handshake --connect 198.18.0.100:443 [--sni shop.test] [--version tls1.1] [--alpn h2,http/1.1]
              [--cert client.pem --key client.key] [--cafile ca.pem] [--request /path]
        {"ok": true, "version": "TLSv1.3", "cipher": "...", "alpn": "h2", "serial": "4B33...",
         "subject": "CN=shop.test", "issuer": "...", "response": "HTTP/1.1 200 OK ..."}
        {"ok": false, "error": "..."}

    ciphers --connect 198.18.0.100:443 --sni shop.test
        {"tls12": ["ECDHE-ECDSA-AES128-GCM-SHA256", ...],   # accepted, each tried alone
         "tls13": ["TLS_AES_128_GCM_SHA256", ...], "offered12": [...], "offered13": [...]}

Old versions and ciphers are tried at OpenSSL's security level 0 (``@SECLEVEL=0``), so what is
refused is refused by the server.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import subprocess
import sys
from typing import Any

from cryptography import x509

VERSIONS = {
    "tls1.0": ssl.TLSVersion.TLSv1,
    "tls1.1": ssl.TLSVersion.TLSv1_1,
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}
TLS13_SUITES = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
)


def context(args: argparse.Namespace, *, ciphers: str = "ALL:@SECLEVEL=0") -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if getattr(args, "cafile", None):
        ctx.load_verify_locations(args.cafile)
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_ciphers(ciphers)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    version = getattr(args, "version", None)
    if version:
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    if getattr(args, "alpn", None):
        ctx.set_alpn_protocols(args.alpn.split(","))
    if getattr(args, "cert", None):
        ctx.load_cert_chain(args.cert, args.key)
    return ctx


def target(args: argparse.Namespace) -> tuple[str, int]:
    host, _, port = args.connect.rpartition(":")
    return host, int(port)


def handshake(args: argparse.Namespace) -> dict[str, Any]:
    try:
        ctx = context(args)
        with (
            socket.create_connection(target(args), timeout=args.timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=args.sni or None) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            result: dict[str, Any] = {
                "ok": True,
                "version": tls.version(),
                "cipher": (tls.cipher() or ("",))[0],
                "alpn": tls.selected_alpn_protocol(),
            }
            if der:
                certificate = x509.load_der_x509_certificate(der)
                result["serial"] = f"{certificate.serial_number:X}"
                result["subject"] = certificate.subject.rfc4514_string()
                result["issuer"] = certificate.issuer.rfc4514_string()
            if args.request:
                host = args.sni or target(args)[0]
                head = f"GET {args.request} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                tls.sendall(head.encode() + b"\r\n")
                chunks = []
                while chunk := tls.recv(65536):
                    chunks.append(chunk)
                result["response"] = b"".join(chunks).decode(errors="replace")
            return result
    except (OSError, ssl.SSLError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def accepts_tls12(args: argparse.Namespace, cipher: str) -> bool:
    ctx = context(args, ciphers=f"{cipher}:@SECLEVEL=0")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with (
            socket.create_connection(target(args), timeout=args.timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=args.sni or None) as tls,
        ):
            return (tls.cipher() or ("",))[0] == cipher
    except (OSError, ssl.SSLError):
        return False


def accepts_tls13(args: argparse.Namespace, suite: str) -> bool:
    argv = ["openssl", "s_client", "-connect", args.connect, "-tls1_3", "-ciphersuites", suite]
    argv += ["-servername", args.sni] if args.sni else ["-noservername"]
    done = subprocess.run(
        argv, input="", capture_output=True, text=True, timeout=args.timeout + 5, check=False
    )
    return done.returncode == 0 and f"Cipher is {suite}" in done.stdout


def ciphers(args: argparse.Namespace) -> dict[str, Any]:
    everything = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    everything.set_ciphers("ALL:@SECLEVEL=0")
    offered12 = [c["name"] for c in everything.get_ciphers() if c["protocol"] != "TLSv1.3"]
    return {
        "offered12": offered12,
        "tls12": [c for c in offered12 if accepts_tls12(args, c)],
        "offered13": list(TLS13_SUITES),
        "tls13": [s for s in TLS13_SUITES if accepts_tls13(args, s)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["handshake", "ciphers"])
    parser.add_argument("--connect", required=True, help="HOST:PORT")
    parser.add_argument("--sni")
    parser.add_argument("--version", choices=sorted(VERSIONS))
    parser.add_argument("--alpn")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--cafile")
    parser.add_argument("--request", help="GET this path after the handshake")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    result = handshake(args) if args.command == "handshake" else ciphers(args)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
