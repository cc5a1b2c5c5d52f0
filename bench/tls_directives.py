"""What each of Bascule's HTTP directives costs a keep-alive TLS request, in HAProxy's CPU time.

One command, as root, from the repository root::

    .venv/bin/python bench/tls_directives.py              # 4 rounds x 3 s, ~2.5 min
    .venv/bin/python bench/tls_directives.py --rounds 6

The TLS bench (bench/tls.py) found Bascule's HAProxy spending more CPU per keep-alive request
over TLS than a hand-written one. This finds where: in the L7 bench's network (real servers
with nginx ``return 200``), it runs several HAProxy instances side by side, each the
hand-written TLS configuration of bench/tls.py plus one of the directives Bascule adds (and one
with all of them; ``request-log`` is the request logs, on by default, to a pipe read by
Bascule's own receiver, as the daemon does), and for each, interleaved, ``wrk -t2 -c50`` with
keep-alive over TLS while counting the instance's user + system time per request. Figures:
docs/performance.md, TLS.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from netns import Topology

from bascule.engines.haproxy.logs import log_view
from bascule.model import parse_document
from l7 import OWN_SESSION, cpu_ticks, preflight, start_pipe_reader, start_real_server_nginx
from tls import CIPHERS, CURVES, SUITES, make_certificate

HAND = """global
{global_extra}    maxconn 8000
    tune.ssl.default-dh-param 2048
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
listen web
    bind {address}:{port} ssl crt {certificate} alpn http/1.1 ssl-min-ver TLSv1.2 \
ciphers {ciphers} ciphersuites {suites} curves {curves} prefer-client-ciphers no-tls-tickets
    balance roundrobin
    option http-keep-alive
    option forwardfor
    http-request set-header X-Forwarded-Proto https
{extra}{servers}"""

# What engines/haproxy/view.py and tls.py add to an HTTPS service, in groups.
ADDITIONS = {
    "hand-written": (),
    "retry-on": ("retry-on conn-failure empty-response response-timeout",),
    "disable-l7-retry": (
        "http-request disable-l7-retry unless METH_GET || METH_OPTIONS || METH_PUT || "
        "METH_DELETE || METH_TRACE",
    ),
    "reuse": ("http-reuse safe", "option idle-close-on-response"),
    "headers": (
        "http-request del-header X-SSL-Client -m beg",
        "http-request set-header X-Forwarded-Port %[dst_port]",
    ),
    # request logs, on by default (engines/haproxy/logs.py): the global "log" line is added
    # where these are (see LOG_TARGET), the pipe read by Bascule's own receiver
    "request-log": ("log global", "option httplog"),
}
FIRST_PORT = 9500
# The daemon's log target as engines/haproxy/logs.py renders it.
LOG_TARGET = log_view(parse_document({}), True).global_lines[0]


def configurations(address: str, certificate: Path, servers: Sequence[str]) -> dict[str, str]:
    every = tuple(line for lines in ADDITIONS.values() for line in lines)
    variants = {**ADDITIONS, "all": every}
    server_lines = "".join(f"    server rs{i} {s}:80\n" for i, s in enumerate(servers, 1))
    log_target = f"    {LOG_TARGET}\n"
    return {
        name: HAND.format(
            global_extra=log_target if "option httplog" in lines else "",
            address=address,
            port=FIRST_PORT + index,
            certificate=certificate,
            ciphers=CIPHERS,
            suites=SUITES,
            curves=CURVES,
            extra="".join(f"    {line}\n" for line in lines),
            servers=server_lines,
        )
        for index, (name, lines) in enumerate(variants.items())
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args(argv)
    preflight("bench/tls_directives.py", ("wrk", "nginx", "haproxy"))
    with Topology(real_servers=3) as topology:
        assert topology.workdir is not None
        work = topology.workdir
        start_real_server_nginx(topology, work)
        lb = topology.lb.address
        certificate = make_certificate(work, "ecdsa", lb)
        reader, holding = start_pipe_reader(work / "requests.fifo", work / "logs")
        servers = [host.address for host in topology.real_servers]
        pids: dict[str, int] = {}
        urls: dict[str, str] = {}
        texts = configurations(lb, certificate, servers)
        for index, (name, text) in enumerate(texts.items()):
            path = work / f"{name}.cfg"
            path.write_text(text)
            argv_ = ["haproxy", "-db", "-f", str(path)]
            logs = holding if "option httplog" in text else {}
            pids[name] = topology.popen(
                "lb", argv_, stdout=subprocess.DEVNULL, **OWN_SESSION, **logs
            ).pid
            urls[name] = f"https://{lb}:{FIRST_PORT + index}/"
            topology.wait_tcp("client", lb, FIRST_PORT + index)
        spent: dict[str, list[float]] = {name: [] for name in pids}
        names = list(pids)
        for round_ in range(args.rounds):
            shift = round_ % len(names)
            for name in (*names[shift:], *names[:shift]):
                before = cpu_ticks(pids[name])
                wrk = ["wrk", "-t2", "-c50", f"-d{args.duration:g}s", urls[name]]
                output = topology.run("client", wrk, **OWN_SESSION).stdout
                ticks = cpu_ticks(pids[name]) - before
                found = re.search(r"(\d+) requests in", output)
                if found is None:
                    raise RuntimeError(f"cannot read wrk's output:\n{output}")
                seconds = ticks / os.sysconf("SC_CLK_TCK")
                spent[name].append(seconds * 1e6 / int(found.group(1)))
        reader.terminate()
        reader.wait(timeout=30)
    print("HAProxy CPU per keep-alive TLS request, microseconds (median, then each round)")
    for name, values in spent.items():
        rounds = " / ".join(f"{value:.1f}" for value in values)
        print(f"  {name:<18}{statistics.median(values):6.1f}   {rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
