"""HAProxy's peers listener (finding 6): a unix socket by default (bind unix@..., mode 600),
and on the network only with TLS and verified certificates, which ``haproxy -c`` accepts."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

import pytest
from make_certificates import issue

from bascule.engines.haproxy.peers import PeersListener, PeersTls
from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.view import HaproxyGlobals, build_view
from bascule.model import parse_document
from bascule.settings import Settings

HAPROXY = Path("/usr/sbin/haproxy")
PERSISTED = {
    "virtual_services": [
        {
            "name": "web",
            "address": "198.18.0.100",
            "port": 80,
            "persistence": {"method": "source_ip"},
            "real_servers": [{"address": "198.18.0.4", "port": 80}],
        }
    ]
}


def write_pki(directory: Path) -> PeersTls:
    """A CA and this node's certificate, valid now, as HAProxy reads them."""
    now = datetime.datetime.now(datetime.UTC)
    validity = {
        "not_before": now - datetime.timedelta(days=1),
        "not_after": now + datetime.timedelta(days=30),
    }
    ca = issue("Bascule peers CA", ca=True, **validity)
    node = issue("lb1", issuer=ca, ips=("127.0.0.1",), **validity)
    (directory / "ca.pem").write_bytes(ca.pem)
    (directory / "node.pem").write_bytes(node.pem + node.key_pem)  # HAProxy's crt: both
    return PeersTls(crt=str(directory / "node.pem"), ca_file=str(directory / "ca.pem"))


def rendered(listener: PeersListener) -> str:
    globals_ = HaproxyGlobals(
        stats_socket="/run/x.sock", maxconn=10, nbthread=1, local_peer=listener
    )
    return render(build_view(parse_document(PERSISTED), globals_))


def test_the_default_is_a_unix_socket_only_root_reaches() -> None:
    listener = PeersListener(address="/var/lib/bascule/haproxy/peers.sock")
    assert listener.lines() == (
        "bind 'unix@/var/lib/bascule/haproxy/peers.sock' mode 600",
        "server bascule",
    )
    assert "127.0.0.1:7785" not in rendered(listener)


@pytest.mark.parametrize("address", ["127.0.0.1:7785", "198.18.0.2:7785", "[2001:2::1]:7785"])
def test_a_listener_on_the_network_needs_tls(address: str) -> None:
    with pytest.raises(ValueError, match="needs TLS with verified certificates"):
        PeersListener(address=address)
    with pytest.raises(ValueError, match="unix socket path or ADDRESS:PORT"):
        PeersListener(address="lb1:7785", tls=PeersTls(crt="/c", ca_file="/a"))


def test_tls_verifies_both_ends() -> None:
    listener = PeersListener(
        address="198.18.0.2:7785",
        tls=PeersTls(crt="/etc/bascule/peers.pem", ca_file="/etc/bascule/ca.pem"),
    )
    options = "ssl crt '/etc/bascule/peers.pem' ca-file '/etc/bascule/ca.pem' verify required"
    assert listener.lines() == (
        f"bind '198.18.0.2:7785' {options}",
        f"default-server {options}",
        "server bascule",
    )


def test_a_joined_pair_names_its_node_and_the_remote_peer() -> None:
    """daemon/pair_state.py: the local peer is the node, the other node a remote peer."""
    listener = PeersListener(
        address="198.18.0.3:8444",
        tls=PeersTls(crt="/p/peers.pem", ca_file="/p/peers-ca.pem"),
        name="lb1",
        remotes=(("lb2", "198.18.0.4:8444"),),
    )
    assert listener.lines()[2:] == ("server lb1", "server lb2 '198.18.0.4:8444'")
    assert "    localpeer lb1\n" in rendered(listener)


@pytest.mark.parametrize(
    ("name", "remotes", "message"),
    [
        ("lb1\nglobal", (), "safe HAProxy identifier"),
        ("lb1", (("lb 2", "198.18.0.4:8444"),), "safe HAProxy identifier"),
        ("lb1", (("lb2", "lb2:8444"),), "ADDRESS:PORT"),
        ("lb1", (("lb1", "198.18.0.4:8444"),), "the local peer's name"),
    ],
)
def test_bad_peer_names_and_addresses_are_refused(
    name: str, remotes: tuple[tuple[str, str], ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PeersListener(
            address="198.18.0.3:8444", tls=PeersTls(crt="/c", ca_file="/a"), name=name,
            remotes=remotes,
        )  # fmt: skip
    with pytest.raises(ValueError, match="remote peers need a peers listener on the network"):
        PeersListener(address="/run/peers.sock", remotes=(("lb2", "198.18.0.4:8444"),))


@pytest.mark.skipif(not HAPROXY.exists(), reason=f"no HAProxy at {HAPROXY}")
@pytest.mark.parametrize("kind", ["unix", "tls", "pair"])
def test_haproxy_accepts_both(kind: str, tmp_path: Path) -> None:
    listener = (
        PeersListener(address=str(tmp_path / "peers.sock"))
        if kind == "unix"
        else PeersListener(address="127.0.0.1:7785", tls=write_pki(tmp_path))
        if kind == "tls"
        else PeersListener(
            address="127.0.0.1:7785",
            tls=write_pki(tmp_path),
            name="lb1",
            remotes=(("lb2", "198.18.0.4:7785"),),
        )
    )
    (tmp_path / "haproxy.cfg").write_text(rendered(listener))
    checked = subprocess.run(
        [str(HAPROXY), "-c", "-f", str(tmp_path / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_settings_refuse_peers_on_the_network_without_tls(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs TLS"):
        Settings(data_dir=tmp_path, peers_listen="198.18.0.2:7785")
    settings = Settings(
        data_dir=tmp_path,
        peers_listen="198.18.0.2:7785",
        peers_tls_cert=tmp_path / "node.pem",
        peers_tls_ca=tmp_path / "ca.pem",
    )
    assert settings.peers_listen == "198.18.0.2:7785"
