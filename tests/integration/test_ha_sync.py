"""The HA pair's configuration sync for real: ``bascule ha join``, the active feeding the
standby, writes refused on the standby, ``ha takeover`` and ``ha leave``.

The topology of ha_pair.py, each daemon's HTTPS listener on its node address (the two call
each other there). lb1 runs the pair's document alone; lb2 starts empty and joins it with an
administrator's token of lb1 and lb1's certificate fingerprint, after a wrong fingerprint (refused
before anything is sent) and a wrong token (refused by lb1) changed nothing. Then: changes on
lb1 are on lb2 with the same numbers when each write returns; lb2 refuses writes naming lb1;
lb2 down during 10 changes catches up on return; the peer's routes refuse any other caller;
``ha takeover`` on lb2 moves the VIP and the right to write; ``ha leave`` ends the link on both.
A partition of the two nodes (clients still reach both) with writes on both sides keeps both
histories, names the conflicting revisions on both nodes until ``ha resolve --keep lb1``, after
which both hold lb1's history and lb2's revisions are in an archive file on lb2.
And the state sync: a client kept on a real server (source_ip) is on the standby's HAProxy
before a failover (HAProxy peers over the node addresses, TLS both ways) and keeps its server
after it; an established L4 NAT connection carrying data survives a failover (conntrackd).
"""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from daemon import BasculeDaemon
from ha_pair import LB1, LB2, START_TIMEOUT, Pair, PairTopology, document
from netns import TOOLS, require_root, wait_ready
from waiting import answered, holds, wait_until

from bascule.cli.client import BasculeClient

pytestmark = pytest.mark.integration

if not Path("/usr/sbin/keepalived").exists():
    pytest.skip("needs keepalived (Debian package keepalived)", allow_module_level=True)

PORT = 8443


def fingerprint(daemon: BasculeDaemon) -> str:
    """The SHA-256 of a daemon's listener certificate, as ``AB:CD:...``."""
    pem = (daemon.data_dir / "tls" / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex(":").upper()


def history(daemon: BasculeDaemon) -> list[tuple[int, str, str]]:
    items = daemon.cli_json("history", "-n", "200")["items"]
    return [(item["number"], item["created_at"], item["author"]) for item in items]


def head(daemon: BasculeDaemon) -> int | None:
    revision: int | None = daemon.cli_json("ha", "status")["revision"]
    return revision


def weighted(vip: str, weight: int) -> dict[str, Any]:
    """The pair's document with the first real server's weight changed: one revision each."""
    changed = copy.deepcopy(document(vip))
    changed["virtual_services"][0]["real_servers"][0]["weight"] = weight
    return changed


@contextlib.contextmanager
def api(daemon: BasculeDaemon) -> Iterator[BasculeClient]:
    """The daemon's API over its unix socket, from the test's process."""
    client = BasculeClient(daemon.data_dir / "bascule.sock", author="test")
    try:
        yield client
    finally:
        client.close()


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    return result.stdout + result.stderr


@pytest.fixture
def lb1_alone(_stale_namespaces_removed: None) -> Iterator[Pair]:
    """lb1 active with the pair's document and a certificate in its store; lb2 started empty."""
    require_root()
    with PairTopology() as topology:
        topology.start_real_servers()
        nodes = Pair(
            topology,
            run_args={"lb": ("--listen", f"{LB1}:{PORT}"), "lb2": ("--listen", f"{LB2}:{PORT}")},
        )
        try:
            nodes.start("lb")
            wait_until("lb1 holds the VIP", lambda: nodes.holds_vip("lb"), timeout=20)
            lb1 = nodes.daemons["lb"]
            lb1.cli("cert", "self-signed", "pair-test", "--dns", "pair.example")
            nodes.daemons["lb2"].start(timeout=START_TIMEOUT)
            yield nodes
        finally:
            nodes.stop()


def join(pair: Pair, *, token: str, fingerprint_given: str) -> subprocess.CompletedProcess[str]:
    return pair.daemons["lb2"].cli(
        "ha", "join", f"https://{LB1}:{PORT}", "--token", token,
        "--fingerprint", fingerprint_given, check=False,
    )  # fmt: skip


def admin_token(daemon: BasculeDaemon, name: str) -> str:
    secret: str = daemon.cli_json("token", "create", name, "--role", "admin")["secret"]
    return secret


def peer_call(pair: Pair, path: str, token: str | None) -> int:
    """The status of a GET of lb1's ``path`` from the client, with ``token`` if given."""
    code = (
        "import httpx,sys;"
        "h={'Authorization':'Bearer '+sys.argv[2]} if len(sys.argv)>2 else {};"
        "print(httpx.get(sys.argv[1],headers=h,verify=False).status_code)"
    )
    argv = [sys.executable, "-c", code, f"https://{LB1}:{PORT}{path}"]
    out = pair.topology.run("client", [*argv, *([token] if token else [])]).stdout
    return int(out.strip())


def test_join_follow_refuse_takeover_and_leave(lb1_alone: Pair) -> None:
    pair = lb1_alone
    lb1, lb2 = pair.daemons["lb"], pair.daemons["lb2"]
    token = admin_token(lb1, "join lb2")
    right = fingerprint(lb1)

    # a wrong fingerprint: refused before the token is sent; nothing changes on either node
    wrong = "00" + right[2:]
    message = refused(join(pair, token=token, fingerprint_given=wrong))
    assert "fingerprint" in message and "nothing was sent" in message, message
    # a wrong token: lb1 refuses it; lb2 revokes the token it had minted for lb1
    message = refused(join(pair, token=token[:-4] + "AAAA", fingerprint_given=right))
    assert "refused (401)" in message, message
    for daemon in (lb1, lb2):
        assert not daemon.cli_json("ha", "status")["sync"]["joined"]
    assert head(lb2) is None
    live = [t for t in lb2.cli_json("token", "list")["items"] if t.get("revoked_at") is None]
    assert not [t for t in live if t["owner"] == "ha peer"], live
    # bad input names its field
    assert "url" in refused(lb2.cli("ha", "join", "http://x", "--token", "t", check=False))

    # the right ones: lb2 takes lb1's history and certificate store, and follows
    joined = lb2.cli_json(
        "ha", "join", f"https://{LB1}:{PORT}", "--token", token, "--fingerprint", right.lower()
    )
    assert joined["sync"]["joined"] and joined["sync"]["peer_fingerprint"] == right
    assert history(lb2) == history(lb1)
    certificate = lb2.cli_json("cert", "show", "pair-test")
    assert certificate["has_key"], certificate
    assert pair.settled() == "lb"
    assert lb1.cli_json("ha", "status")["sync"]["health"] == "in_sync"

    # 100 changes on the active: each is on the standby, same number, when the write returns
    # (through the API on the unix socket: 100 CLI starts would be most of the time)
    with api(lb1) as on_lb1, api(lb2) as on_lb2:
        for weight in range(101, 201):
            number = on_lb1.put_config(weighted(pair.vip, weight))["revision"]
            assert on_lb2.ha_status()["revision"] == number
    assert history(lb2) == history(lb1)
    assert len(history(lb1)) > 100

    # the standby refuses writes, naming the active
    message = refused(lb2.apply(weighted(pair.vip, 7), check=False))
    assert "standby" in message and LB1 in message, message
    message = refused(lb2.cli("cert", "delete", "pair-test", check=False))
    assert LB1 in message, message

    # the peer's routes: only the peer's token (no token 401, an administrator's 403)
    assert peer_call(pair, "/api/v1/ha/peer/state", None) == 401
    assert peer_call(pair, "/api/v1/ha/peer/state", token) == 403

    # the standby away during 10 changes catches up when it returns
    lb2.terminate()
    for weight in range(111, 121):
        lb1.apply(weighted(pair.vip, weight))
    status = lb1.cli_json("ha", "status")["sync"]
    assert status["health"] == "unreachable" and status["peer_revision"] < head(lb1), status
    lb2.start(timeout=START_TIMEOUT)
    wait_until("lb2 caught up", lambda: head(lb2) == head(lb1), timeout=30)
    assert history(lb2) == history(lb1)

    # a planned takeover from the standby: lb2 holds the VIP and takes the writes
    taken = lb2.cli_json("ha", "takeover")
    assert taken["role"] == "active", taken
    assert pair.settled() == "lb2"
    message = refused(lb1.apply(weighted(pair.vip, 8), check=False))
    assert LB2 in message, message
    lb2.apply(weighted(pair.vip, 9))
    assert head(lb1) == head(lb2)

    # leaving: both nodes forget the link; lb1 takes changes again
    left = lb1.cli_json("ha", "leave")
    assert not left["sync"]["joined"]
    wait_until("lb2 forgot the link", lambda: not lb2.cli_json("ha", "status")["sync"]["joined"])
    lb1.apply(weighted(pair.vip, 10))
    print("\nHA sync:", json.dumps({"revisions": head(lb1)}))


def sticky(vip: str, vip_cookie: str) -> dict[str, Any]:
    """The pair's document with source_ip persistence on ``web``, and ``app``, a copy on
    another VIP with active_cookie persistence."""
    changed = copy.deepcopy(document(vip))
    web = changed["virtual_services"][0]
    web["persistence"] = {"method": "source_ip", "timeout": 600}
    app = {**copy.deepcopy(web), "name": "app", "address": vip_cookie}
    app["persistence"] = {"method": "active_cookie", "cookie": "LB", "timeout": 600}
    changed["virtual_services"].append(app)
    return changed


def test_a_client_keeps_its_real_server_across_a_failover(lb1_alone: Pair) -> None:
    """The stick tables are shared over the node addresses (HAProxy peers, TLS both ways):
    the standby's HAProxy knows the client's server before the failover, and serves it that
    server after."""
    pair = lb1_alone
    lb1, lb2 = pair.daemons["lb"], pair.daemons["lb2"]
    token = admin_token(lb1, "join lb2")
    lb2.cli("ha", "join", f"https://{LB1}:{PORT}", "--token", token, "--fingerprint",
            fingerprint(lb1))  # fmt: skip
    vip_cookie = pair.topology.vip(102)
    lb1.apply(sticky(pair.vip, vip_cookie))
    assert head(lb2) == head(lb1)

    def shared() -> bool:
        return all(d.cli_json("ha", "status")["tables"] == "established" for d in (lb1, lb2))

    wait_until("the stick tables are shared", shared, timeout=30)
    assert pair.settled() == "lb"

    assert pair.topology.workdir is not None
    jar = str(pair.topology.workdir / "cookies")

    def served(vip: str = pair.vip, *cookies: str) -> str:
        argv = ["curl", "-s", "--max-time", "2", *cookies, f"http://{vip}/"]
        return pair.topology.run("client", argv).stdout.strip()

    with_cookie = ("-c", jar, "-b", jar)
    before_cookie = {served(vip_cookie, *with_cookie) for _ in range(6)}
    assert len(before_cookie) == 1, before_cookie
    before = {served() for _ in range(6)}
    assert len(before) == 1, before  # source_ip: one server for the one client
    entries = lb1.cli_json("persistence", "show", "web")["entries"]
    assert len(entries) == 1, entries
    kept = entries[0]["real_server"]

    def on_lb2() -> bool:
        seen = lb2.cli_json("persistence", "show", "web")["entries"]
        return [entry["real_server"] for entry in seen] == [kept]

    wait_until("lb2's HAProxy has the client's entry", on_lb2, timeout=10)
    lb1.cli_json("ha", "standby")
    assert pair.settled() == "lb2"
    after = {served() for _ in range(6)}
    assert after == before, (before, after)
    # active_cookie needs no shared state: the cookie names the server, alike on both nodes
    assert {served(vip_cookie, *with_cookie) for _ in range(6)} == before_cookie
    print(f"\nHA persistence: the client stayed on {kept} across the failover")


def streaming(vip: str, vip_l4: str) -> dict[str, Any]:
    """The pair's document with an L4 NAT service on a second VIP."""
    changed = copy.deepcopy(document(vip))
    changed["virtual_services"].append(
        {
            "name": "stream",
            "address": vip_l4,
            "port": 80,
            "mode": "l4",
            "forwarding": "nat",
            "check": {"type": "tcp", "interval": 1},
            "real_servers": [
                {"address": "198.18.0.11", "port": 80},
                {"address": "198.18.0.12", "port": 80},
            ],
        }
    )
    return changed


def test_an_established_l4_connection_survives_a_failover(lb1_alone: Pair) -> None:
    """conntrackd copies lb1's NAT flows into lb2's kernel: after the failover, the packets of
    an established connection find their translation on lb2 and reach the same real server,
    on the same connection, with no error. lb1's link is cut, so nothing else could carry it."""
    pair = lb1_alone
    topology = pair.topology
    lb1, lb2 = pair.daemons["lb"], pair.daemons["lb2"]
    vip_l4 = topology.vip(101)
    # routed NAT: the real servers answer the client through whichever node holds the VIPs
    for server in topology.real_servers:
        topology.run(server, ["ip", "route", "add", f"{topology.client.address}/32", "via", vip_l4])
    token = admin_token(lb1, "join lb2")
    lb2.cli("ha", "join", f"https://{LB1}:{PORT}", "--token", token, "--fingerprint",
            fingerprint(lb1))  # fmt: skip
    lb1.apply(streaming(pair.vip, vip_l4))

    def flows_shared() -> bool:
        return all(d.cli_json("ha", "status")["flows"] == "running" for d in (lb1, lb2))

    wait_until("conntrackd runs on both nodes", flows_shared, timeout=30)
    assert pair.settled() == "lb"
    topology.wait_tcp("client", vip_l4, 80, timeout=30)
    assert topology.workdir is not None
    stop = topology.workdir / "stream-stop"
    progress = topology.workdir / "stream-progress"
    client = topology.popen(
        "client",
        [sys.executable, str(TOOLS / "stream_client.py"), f"--address={vip_l4}",
         f"--stop-file={stop}", f"--progress-file={progress}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_ready(client, timeout=10)

    def on_lb2() -> bool:
        out = topology.run(
            "lb2", ["conntrack", "-L", "-p", "tcp", "--orig-dst", vip_l4], check=False
        ).stdout
        return "ESTABLISHED" in out

    wait_until("lb2's kernel holds the flow", on_lb2, timeout=10)
    # lb1 cut off: the flow can only go on through lb2 (a planned handover would leave lb1
    # able to forward what still reaches it)
    topology.run("lb", ["ip", "link", "set", "eth0", "down"])
    wait_until("lb2 takes the VIPs", lambda: pair.holds_vip("lb2"), timeout=10, poll=0.02)
    seen = answered(progress)
    wait_until("answers on lb2", lambda: answered(progress) >= seen + 40, timeout=20)
    stop.touch()
    out, err = client.communicate(timeout=30)
    result = json.loads(out.strip().splitlines()[-1])
    print(f"\nHA L4 flow across the failover: {json.dumps(result)}")
    assert result["error"] is None, (result, err)
    assert len(result["servers"]) == 1, result


def joined_pair(pair: Pair) -> None:
    """lb2 joined to lb1, lb1 the active."""
    lb1, lb2 = pair.daemons["lb"], pair.daemons["lb2"]
    token = admin_token(lb1, "join lb2")
    lb2.cli("ha", "join", f"https://{LB1}:{PORT}", "--token", token, "--fingerprint",
            fingerprint(lb1))  # fmt: skip
    assert pair.settled() == "lb"


#: The test's own nftables table (Bascule's are named "bascule...").
PARTITION = "bsc_partition"


def partition(pair: Pair) -> None:
    """Each node drops every packet from and to the other node's address: VRRP, the sync,
    the stick tables and conntrackd are cut; the client and the real servers reach both."""
    for node, other in (("lb", LB2), ("lb2", LB1)):
        run = pair.topology.run
        run(node, ["nft", "add", "table", "inet", PARTITION])
        for chain, hook, match in (("in", "input", "saddr"), ("out", "output", "daddr")):
            run(node, ["nft", "add", "chain", "inet", PARTITION, chain,
                       f"{{ type filter hook {hook} priority -300 ; }}"])  # fmt: skip
            run(node, ["nft", "add", "rule", "inet", PARTITION, chain, "ip", match, other, "drop"])


def heal(pair: Pair) -> None:
    for node in ("lb", "lb2"):
        pair.topology.run(node, ["nft", "delete", "table", "inet", PARTITION])


def exported(daemon: BasculeDaemon) -> Any:
    with api(daemon) as client:
        return client.get_config()


def test_a_partition_with_writes_on_both_sides_is_reported_then_resolved(
    lb1_alone: Pair,
) -> None:
    pair = lb1_alone
    lb1, lb2 = pair.daemons["lb"], pair.daemons["lb2"]
    joined_pair(pair)
    lb1.apply(weighted(pair.vip, 101))
    fork = head(lb1)
    assert fork is not None and head(lb2) == fork

    partition(pair)
    try:
        wait_until("lb2 is a MASTER too", lambda: pair.vrrp_state("lb2") == "MASTER", timeout=20)
        lb1.apply(weighted(pair.vip, 201))  # each write waits for the peer, then returns
        lb2.apply(weighted(pair.vip, 301))
        lb2.apply(weighted(pair.vip, 302))
        on_lb1, on_lb2 = history(lb1), history(lb2)
        assert head(lb1) == fork + 1 and head(lb2) == fork + 2
    finally:
        heal(pair)
    assert pair.settled() == "lb"  # the higher priority keeps the VIP

    def conflict(daemon: BasculeDaemon) -> Any:
        return daemon.cli_json("ha", "status")["sync"]["conflict"]

    wait_until("lb1 reports the conflict", lambda: conflict(lb1) is not None, timeout=30)
    wait_until("lb2 reports the conflict", lambda: conflict(lb2) is not None, timeout=30)
    seen = {node: conflict(daemon) for node, daemon in pair.daemons.items()}
    assert seen["lb"]["fork"] == seen["lb2"]["fork"] == fork, seen
    assert [r["number"] for r in seen["lb"]["here"]] == [fork + 1], seen
    assert [r["number"] for r in seen["lb"]["peer"]] == [fork + 1, fork + 2], seen
    assert [r["number"] for r in seen["lb2"]["here"]] == [fork + 1, fork + 2], seen
    text = lb1.cli("ha", "status").stdout
    assert "diverge" in text and "bascule ha resolve --keep" in text, text
    assert "the pair's histories diverge" in lb1.log_path.read_text()
    # nothing was overwritten meanwhile; lb2 still runs its own revision
    assert history(lb1) == on_lb1 and history(lb2) == on_lb2

    # resolved from lb2, keeping lb1's history: lb2's two revisions go to an archive on lb2
    resolved = lb2.cli_json("ha", "resolve", "--keep", "lb1")
    resolution = resolved["sync"]["resolution"]
    assert resolution["kept"] == "lb1" and resolution["archived_node"] == "lb2", resolution
    assert resolution["archived"] == [fork + 1, fork + 2], resolution
    archive = json.loads(Path(resolution["archive"]).read_text())
    assert [r["number"] for r in archive["revisions"]] == [fork + 1, fork + 2]
    assert (
        archive["revisions"][-1]["document"]["virtual_services"][0]["real_servers"][0]["weight"]
        == 302
    )
    assert history(lb2) == history(lb1) == on_lb1
    assert exported(lb2) == exported(lb1)
    text = lb2.cli("ha", "status").stdout
    assert "archived in" in text and resolution["archive"] in text.replace("\n", ""), text
    wait_until(
        "both in step again",
        lambda: (
            lb1.cli_json("ha", "status")["sync"]["health"] == "in_sync"
            and lb2.cli_json("ha", "status")["sync"]["health"] == "following"
        ),
        timeout=30,
    )
    # lb2 runs lb1's document again (its HAProxy: the weight of revision fork + 1)
    lb1.apply(weighted(pair.vip, 202))
    assert head(lb2) == head(lb1) == fork + 2
    assert exported(lb2) == exported(lb1)
    print("\nHA partition:", json.dumps({"fork": fork, "archived": resolution["archived"]}))


def test_a_rolling_upgrade_fails_no_request(lb1_alone: Pair) -> None:
    """Restart the standby's daemon, take over from it, restart the other daemon: a client
    opening a new connection every 10 ms for an idempotent GET, retrying once as a browser
    does, has every request answered."""
    pair = lb1_alone
    topology = pair.topology
    lb1, lb2 = pair.daemons["lb"], pair.daemons["lb2"]
    joined_pair(pair)
    topology.wait_tcp("client", pair.vip, 80, timeout=30)

    def role(daemon: BasculeDaemon) -> str:
        return str(daemon.cli_json("ha", "status")["role"])

    assert topology.workdir is not None
    stop = topology.workdir / "upgrade-stop"
    progress = topology.workdir / "upgrade-progress"
    probe = topology.popen(
        "client",
        [sys.executable, str(TOOLS / "gap_probe.py"), f"--url=http://{pair.vip}/",
         "--retries=1", "--duration=600", f"--stop-file={stop}", f"--progress-file={progress}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until("the probe gets answers", lambda: answered(progress) >= 20, timeout=10)
        lb2.terminate()  # "upgrade" the standby: a new daemon over the running engines
        lb2.start(timeout=START_TIMEOUT)
        wait_until("lb2 stands by again", lambda: role(lb2) == "standby", timeout=30)
        assert lb2.cli_json("ha", "takeover")["role"] == "active"
        assert pair.settled() == "lb2"
        lb1.terminate()
        lb1.start(timeout=START_TIMEOUT)
        wait_until("lb1 stands by again", lambda: role(lb1) == "standby", timeout=30)
        seen = answered(progress)
        wait_until("answers after", lambda: answered(progress) >= seen + 100, timeout=20)
    finally:
        stop.touch()
        out, err = probe.communicate(timeout=60)
    result = json.loads(out)
    print(f"\nHA rolling upgrade: {json.dumps(result)}")
    assert result["failed"] == 0 and result["answered"] > 500, (result, err)
    lb2.apply(weighted(pair.vip, 5))  # the new active takes writes and feeds lb1
    assert head(lb1) == head(lb2)


def guarded(vip: str) -> dict[str, Any]:
    """The pair's document with basic authentication on ``web`` (user ``ops``)."""
    changed = copy.deepcopy(document(vip))
    web = changed["virtual_services"][0]
    web["type"] = "http"
    web["authentication"] = {"realm": "staff", "users": ["ops"]}
    return changed


def test_http_users_follow_the_active_and_serve_after_a_failover(lb1_alone: Pair) -> None:
    """An HTTP user added on the active is on the standby when the command returns (its hash,
    over the pinned channel); after a failover the new active checks it (real curl: 200 with
    it, 401 without or with another password); a new password given on the new active is
    the one checked after failing back; deleted, it is gone on both."""
    pair = lb1_alone
    lb1, lb2 = pair.daemons["lb"], pair.daemons["lb2"]
    joined_pair(pair)

    def users(daemon: BasculeDaemon) -> list[str]:
        return [item["name"] for item in daemon.cli_json("http-user", "list")["items"]]

    def status(user: str | None) -> int:
        argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"]
        if user is not None:
            argv += ["-u", user]
        return int(pair.topology.run("client", [*argv, f"http://{pair.vip}/"]).stdout)

    lb1.cli("http-user", "add", "ops", "--password-stdin", stdin="ops-password-1\n")
    assert users(lb2) == ["ops"]  # on the standby when the add returned
    message = refused(
        lb2.cli("http-user", "add", "dev", "--password-stdin", stdin="dev-password-1\n",
                check=False)
    )  # fmt: skip
    assert LB1 in message, message
    lb1.apply(guarded(pair.vip))
    assert head(lb2) == head(lb1)
    wait_until("lb1 checks the user", lambda: status("ops:ops-password-1") == 200, timeout=30)
    assert status(None) == 401 and status("ops:wrong-password") == 401

    lb1.cli_json("ha", "standby")
    assert pair.settled() == "lb2"
    # lb2's HAProxy had the user before the failover: no wait for a reload
    assert status("ops:ops-password-1") == 200
    assert status(None) == 401 and status("ops:wrong-password") == 401

    # a new password on the new active: lb1's HAProxy checks it once lb1 is the active again
    lb2.cli("http-user", "passwd", "ops", "--password-stdin", stdin="ops-password-2\n")
    lb2.cli_json("ha", "standby")
    assert pair.settled() == "lb"
    assert status("ops:ops-password-2") == 200 and status("ops:ops-password-1") == 401

    # removed: the service first, then the user; gone on both nodes
    lb1.apply(weighted(pair.vip, 5))
    lb1.cli("http-user", "delete", "ops", "--yes")
    assert users(lb1) == [] and users(lb2) == []
    assert lb1.cli_json("ha", "status")["sync"]["health"] == "in_sync"


DRAIN = 6
# Holds one connection to ARGV[1]:ARGV[2] (a tcp-echo real server behind the VIP) and answers
# each line of stdin with the echo's "<server> <peer ip>:<port>" (the peer: the load
# balancer node carrying the connection), or "closed" once it no longer echoes.
HOLDER = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=15)
lines = s.makefile("rb")
print("ready", flush=True)
for _ in sys.stdin:
    try:
        s.sendall(b"y\\n")
        answer = lines.readline().decode()
    except OSError:
        answer = ""
    if not answer.endswith(" y\\n"):
        print("closed", flush=True)
        break
    print(answer.split()[1].rsplit(":", 1)[0], flush=True)
"""


class Holder:
    """A long connection from the client: which node carries it, asked line by line."""

    def __init__(self, pair: Pair, vip: str, port: int) -> None:
        self.proc: subprocess.Popen[str] = pair.topology.popen(
            "client",
            [sys.executable, "-c", HOLDER, vip, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip() or "closed"

    def carrier(self) -> str:
        """The address of the node the connection goes through, or "closed"."""
        if self.proc.poll() is not None:
            return "closed"
        assert self.proc.stdin is not None
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        return self._line()


def test_a_planned_standby_drains_long_connections_within_the_drain_time(
    lb1_alone: Pair,
) -> None:
    """``bascule ha standby``: new connections go to the new active at once, while a long
    connection opened on the old active keeps working through it (the new active hands the
    segments of connections it does not know to the peer: daemon/handover.py) until the
    service's drain_time, when the old active closes it."""
    pair = lb1_alone
    topology = pair.topology
    for server in topology.real_servers:
        topology.start_real_server(server, "--mode", "tcp-echo", port=7000)
    lb1, lb2 = pair.daemons["lb"], pair.daemons["lb2"]
    joined_pair(pair)
    changed = document(pair.vip)
    changed["virtual_services"].append(
        {
            "name": "hold",
            "address": pair.vip,
            "port": 7000,
            "type": "generic",
            "drain_time": DRAIN,
            "check": {"type": "tcp", "interval": 1},
            "real_servers": [
                {"address": server.address, "port": 7000} for server in topology.real_servers
            ],
        }
    )
    lb1.apply(changed)
    assert head(lb2) == head(lb1)
    active, other = "lb", "lb2"
    address = {"lb": LB1, "lb2": LB2}

    def handover_tables() -> bool:
        return all(
            topology.run(
                node, ["nft", "list", "table", "ip", "bascule_handover"], check=False
            ).returncode
            == 0
            for node in pair.daemons
        )

    wait_until("both nodes hold the handover table", handover_tables, timeout=30)
    topology.wait_tcp("client", pair.vip, 7000, timeout=30)
    held = Holder(pair, pair.vip, 7000)
    assert held.carrier() == address[active]

    started = time.monotonic()
    lb1.cli_json("ha", "standby")
    assert pair.settled() == other
    # a new connection: to the new active, at once
    fresh = Holder(pair, pair.vip, 7000)
    assert fresh.carrier() == address[other]
    # the old one: through the old active until the drain time runs out, then closed
    holds(
        f"the long connection goes on through {active}",
        lambda: held.carrier() == address[active],
        DRAIN - (time.monotonic() - started) - 1.0,
        poll=0.2,
    )
    wait_until("the long connection is closed", lambda: held.carrier() == "closed", timeout=10)
    closed = time.monotonic() - started
    # the daemon's drain clock starts once the VIPs moved: the CLI's start and the handover
    # itself (seconds on a loaded machine) come before it
    assert DRAIN - 1.0 <= closed <= DRAIN + 8, closed
    wait_until("lb1 logs the drain's end", lambda: "handover drain time over" in lb1.log(), 5)
    assert fresh.carrier() == address[other]  # the new active's own connection is untouched
    print(f"\nHA planned standby: the long connection was closed {closed:.1f} s after it")
