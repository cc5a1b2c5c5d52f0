"""TLS benchmark: Bascule's SSL offload against a hand-written HAProxy and nginx (issue 11).

One command, as root, from the repository root::

    .venv/bin/python bench/tls.py                # 3 rounds x 5 s, the three workloads
    .venv/bin/python bench/tls.py --rounds 5 --duration 10 --workloads handshake-ecdsa
    .venv/bin/python bench/tls.py --logs off     # nobody logs requests

It builds the L7 bench's throwaway network (tests/integration/netns.py: a client, a load
balancer and three real servers, 198.18.0.0/24; nginx ``return 200`` on the real servers,
plain HTTP) and measures with ``wrk --latency`` three TLS-terminating proxies side by side:

    bascule   a real ``bascule run`` daemon: the certificates imported with ``bascule cert
              add``, two ``type: https`` services (ECDSA and RSA) applied with ``bascule apply``
    haproxy   the same haproxy binary, a hand-written config with the same certificate files,
              versions, ciphers, TLS 1.3 suites, curves and options on its ``bind`` lines
    nginx     nginx as a TLS reverse proxy with the same certificate files, protocols, ciphers
              (``ssl_conf_command`` for the TLS 1.3 suites), curves, no session tickets

under three workloads:

    handshake-ecdsa  ``Connection: close``: every request is a new TCP connection and a full
                     TLS handshake (wrk resumes no session; tickets are off everywhere) with an
                     ECDSA P-256 certificate: requests/s = full handshakes/s
    handshake-rsa    the same with an RSA 2048 certificate
    keepalive        persistent TLS connections (ECDSA): requests/s over established TLS

Request logs (``--logs``): ``on`` (the default) compares each proxy as it ships, logging every
request: Bascule's services log by default (HAProxy -> the daemon's pipe -> its rotated file),
the hand-written HAProxy logs as Debian's packaged configuration does (``log /dev/log local0``
with ``option httplog``; here a unix datagram socket read by a small batched reader, every
waiting datagram at each wake-up, standing in for the system's syslog daemon), nginx with its
default ``access_log`` (the combined format to a file). ``off``: no proxy logs
(``request_log: false`` on Bascule's services, ``access_log off`` for nginx).

Everyone uses Mozilla's intermediate profile as Bascule renders it (``CIPHER_SETS``: TLS 1.2
and 1.3, the same ciphers and groups, the client's cipher order, no tickets); wrk's OpenSSL
negotiates TLS 1.3 with X25519. Runs are interleaved (all targets, then again, rotating who
goes first) and each figure is the median of the rounds, with the spread between rounds,
because the machine is small and shared. Results go to ``bench/results/tls-<time>.json``
(git-ignored) and a table is printed; docs/performance.md, section "TLS", has the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from netns import Topology

from bascule.model.tls import CIPHER_SETS, CipherSet
from l7 import (
    OWN_SESSION,
    SYSCTLS,
    Bench,
    bench_arguments,
    cpu_table,
    environment,
    parse_selection,
    preflight,
    proxy_nginx_head,
    real_server_nginx,
    summarize,
    table,
    write_report,
)

TARGETS = ("bascule", "haproxy", "nginx")
WORKLOADS = {
    "handshake-ecdsa": ("-H", "Connection: close"),
    "handshake-rsa": ("-H", "Connection: close"),
    "keepalive": (),
}
KEYS = ("ecdsa", "rsa")
# Where each proxy listens, per certificate key (Bascule on its VIP, the others on the lb).
PORTS = {
    "bascule": {"ecdsa": 443, "rsa": 8443},
    "haproxy": {"ecdsa": 9443, "rsa": 9444},
    "nginx": {"ecdsa": 10443, "rsa": 10444},
}
PROFILE = CIPHER_SETS[CipherSet.intermediate]
CIPHERS = ":".join(PROFILE.ciphers)
SUITES = ":".join(PROFILE.ciphersuites)
CURVES = ":".join(PROFILE.curves)


# The hand-written HAProxy's syslog daemon (see TlsBench._start_log_reader): argv socket, dir.
# Every waiting datagram at each wake-up, appended with one write (what the daemon's receiver
# did before it read a pipe; rsyslog's imuxsock does about as little per line).
LOG_READER = """
import os, select, socket, sys
from pathlib import Path
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 262144)
sock.bind(sys.argv[1])
sock.setblocking(False)
Path(sys.argv[2]).mkdir(parents=True, exist_ok=True)
out = os.open(Path(sys.argv[2]) / "requests.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
while True:
    select.select([sock], [], [])
    lines = []
    try:
        for _ in range(512):
            lines.append(sock.recv(65536).rstrip(b"\\n"))
    except BlockingIOError:
        pass
    if lines:
        os.write(out, b"\\n".join(lines) + b"\\n")
"""


def key_of(workload: str) -> str:
    return "rsa" if workload.endswith("-rsa") else "ecdsa"


def make_certificate(directory: Path, key_name: str, address: str) -> Path:
    """A self-signed certificate for ``address`` with its key, one PEM (HAProxy and nginx
    read the same file; Bascule imports it)."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_name == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bench-{key_name}")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{key_name}.pem"
    path.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def hand_haproxy(
    address: str,
    servers: Sequence[str],
    certificates: dict[str, Path],
    log_socket: Path | None = None,
) -> str:
    """What a person writes from Mozilla's generator for HAProxy, per certificate; with
    ``log_socket``, logging requests as Debian's packaged haproxy.cfg does (to /dev/log)."""
    logs = log_socket is not None
    lines = [
        "global",
        *([f"    log {log_socket} local0"] if logs else []),
        "    maxconn 8000",
        "    tune.ssl.default-dh-param 2048",
        f"    ssl-default-bind-ciphers {CIPHERS}",
        f"    ssl-default-bind-ciphersuites {SUITES}",
        "    ssl-default-bind-options prefer-client-ciphers ssl-min-ver TLSv1.2 no-tls-tickets",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    option http-keep-alive",
        "    option forwardfor",
        *(["    log global", "    option httplog"] if logs else []),
        "",
        "listen web",
    ]
    for key in KEYS:
        lines.append(
            f"    bind {address}:{PORTS['haproxy'][key]} ssl crt {certificates[key]} "
            f"alpn http/1.1 curves {CURVES}"
        )
    lines += [
        "    balance roundrobin",
        "    http-request set-header X-Forwarded-Proto https",
    ]
    lines += [f"    server rs{i} {server}:80 check" for i, server in enumerate(servers, 1)]
    return "\n".join(lines) + "\n"


def tls_nginx(
    address: str,
    servers: Sequence[str],
    certificates: dict[str, Path],
    prefix: Path,
    *,
    logs: bool = False,
) -> str:
    """nginx as a TLS reverse proxy, from Mozilla's generator for nginx; with ``logs``, its
    default access log (the combined format, one write per request)."""
    access_log = f"access_log {prefix}/access.log combined" if logs else "access_log off"
    upstream = "\n".join(f"        server {server}:80;" for server in servers)
    listeners = "\n".join(
        f"""    server {{
        listen {address}:{PORTS["nginx"][key]} ssl backlog=4096;
        ssl_certificate {certificates[key]};
        ssl_certificate_key {certificates[key]};
        {access_log};
        location / {{
            proxy_pass http://web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
        }}
    }}"""
        for key in KEYS
    )
    return (
        proxy_nginx_head(prefix)
        + f"""\
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {CIPHERS};
    ssl_conf_command Ciphersuites {SUITES};
    ssl_ecdh_curve {CURVES};
    ssl_prefer_server_ciphers off;
    ssl_session_tickets off;
    upstream web {{
{upstream}
        keepalive 64;
        keepalive_requests 100000;
    }}
{listeners}
}}
"""
    )


class TlsBench(Bench):
    workloads = WORKLOADS

    def __init__(self, topology: Topology, args: argparse.Namespace) -> None:
        super().__init__(topology, args)
        self.certificates: dict[str, Path] = {}
        self.log_reader: subprocess.Popen[bytes] | None = None  # the hand HAProxy's syslog

    def url(self, target: str, workload: str) -> str:
        host = self.vip if target == "bascule" else self.topology.lb.address
        return f"https://{host}:{PORTS[target][key_of(workload)]}/"

    def setup(self) -> None:
        for host in self.topology.hosts:
            for sysctl in SYSCTLS:
                self.topology.run(host, ["sysctl", "-qw", sysctl])
        for host in self.topology.real_servers:
            prefix = self.workdir / host.name
            text = real_server_nginx(host.name, host.address, prefix)
            self._start_nginx(host.name, prefix, text, self.pin.servers)
        for address in self.servers:
            self.topology.wait_tcp("client", address, 80)
        pki = self.workdir / "pki"
        pki.mkdir()
        lb = self.topology.lb.address
        self.certificates = {key: make_certificate(pki, key, lb) for key in KEYS}
        targets = self.args.targets
        logs = self.args.logs == "on"
        if "haproxy" in targets:
            log_socket = self._start_log_reader() if logs else None
            text = hand_haproxy(lb, self.servers, self.certificates, log_socket)
            self.configs["haproxy"] = text
            conf = self.workdir / "hand-haproxy.cfg"
            conf.write_text(text)
            self.topology.run("lb", ["haproxy", "-c", "-q", "-f", str(conf)])
            argv = ["haproxy", "-db", "-f", str(conf)]
            proxy = self.topology.popen("lb", argv, stdout=subprocess.DEVNULL, **OWN_SESSION)
            self.pids["haproxy"] = proxy.pid
            self.topology.wait_tcp("client", lb, PORTS["haproxy"]["ecdsa"])
        if "nginx" in targets:
            prefix = self.workdir / "nginx-proxy"
            text = tls_nginx(lb, self.servers, self.certificates, prefix, logs=logs)
            self.configs["nginx"] = text
            self._start_nginx("lb", prefix, text, self.pin.proxy)
            self.topology.wait_tcp("client", lb, PORTS["nginx"]["ecdsa"])
            self.pids["nginx"] = int((prefix / "nginx.pid").read_text().split()[0])
        if "bascule" in targets:
            self._start_bascule_tls()

    def _start_log_reader(self) -> Path:
        """The hand-written HAProxy's syslog daemon: a batched reader of a unix datagram
        socket (``LOG_READER``), writing a file."""
        socket_path = self.workdir / "hand-haproxy-log.sock"
        argv = [sys.executable, "-c", LOG_READER, str(socket_path), str(self.workdir / "logs")]
        self.log_reader = subprocess.Popen(argv, **OWN_SESSION)
        deadline = time.monotonic() + 30
        while not socket_path.exists():
            if self.log_reader.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the log reader did not start")
            time.sleep(0.05)
        return socket_path

    def teardown(self) -> None:
        super().teardown()
        if self.log_reader is not None:
            self.log_reader.terminate()
            self.log_reader.wait(timeout=30)

    def _start_bascule_tls(self) -> None:
        self.start_daemon()
        for key, path in self.certificates.items():
            self._cli("cert", "add", f"bench-{key}", "--cert", str(path), "--key", str(path))
        servers = [{"address": address, "port": 80} for address in self.servers]
        document = {
            "virtual_services": [
                {
                    "name": f"tls-{key}",
                    "address": self.vip,
                    "port": PORTS["bascule"][key],
                    "type": "https",
                    "scheduler": "round_robin",
                    "check": {"type": "http"},
                    "tls": {"certificates": [f"bench-{key}"], "cipher_set": "intermediate"},
                    "real_servers": servers,
                    **({} if self.args.logs == "on" else {"request_log": False}),
                }
                for key in KEYS
            ]
        }
        path = self.workdir / "bascule-tls.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        self._cli("apply", "-f", str(path), "--force")
        deadline = time.monotonic() + 30
        while True:
            status = json.loads(self._cli("--json", "status"))
            if all(s["status"] == "up" for s in status["virtual_services"]):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the virtual services are not up: {status}")
            time.sleep(0.2)
        self.configs["bascule"] = (self.bascule_dir / "haproxy" / "haproxy.cfg").read_text()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_arguments(__doc__.split("\n\n")[0], TARGETS, tuple(WORKLOADS))
    parser.add_argument(
        "--logs",
        choices=("on", "off"),
        default="on",
        help="on: every proxy logs its requests as it ships (Bascule's default, Debian's "
        "haproxy.cfg, nginx's access_log); off: none does",
    )
    args = parse_selection(parser, argv, TARGETS, tuple(WORKLOADS))
    args.pin = "none"  # the L7 bench's pinning: not offered here
    return args


@contextlib.contextmanager
def _bench(args: argparse.Namespace) -> Iterator[TlsBench]:
    with Topology(real_servers=3) as topology:
        bench = TlsBench(topology, args)
        try:
            bench.setup()
            yield bench
        finally:
            bench.teardown()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    preflight("bench/tls.py", ("wrk", "nginx", "haproxy"))
    started = datetime.datetime.now(datetime.UTC)
    env_before = environment()
    print(
        f"{args.rounds} rounds x {args.duration:g} s, wrk -t{args.threads} "
        f"-c{args.connections}, load {env_before['loadavg']}",
        file=sys.stderr,
    )
    with _bench(args) as bench:
        runs = bench.measure()
        configs = bench.configs
    summary = summarize(runs, keys=("rps", "p50_ms", "p99_ms", "cpu_us"))
    path = write_report(
        args,
        kind="tls",
        started=started,
        environment=env_before,
        summary=summary,
        runs=runs,
        configs=configs,
    )
    print(table(summary))
    print(cpu_table(summary))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
