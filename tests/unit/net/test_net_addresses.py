"""net/addresses.py: one spelling of ``host:port``, host prefixes and MAC addresses."""

from __future__ import annotations

import pytest

from bascule.model import RealServer
from bascule.net.addresses import host_port, host_prefix, mac_bytes, mac_text, url_host


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [
        ("198.18.0.4", 80, "198.18.0.4:80"),
        ("2001:2::4", 80, "[2001:2::4]:80"),
        ("[2001:2::4]", "8080", "[2001:2::4]:8080"),  # already bracketed: not twice
        ("example.com", 443, "example.com:443"),
        ("198.18.0.4", "9000-9010", "198.18.0.4:9000-9010"),
    ],
)
def test_host_port(address: str, port: int | str, expected: str) -> None:
    assert host_port(address, port) == expected


def test_url_host_brackets_ipv6_only() -> None:
    assert url_host("2001:2::4") == "[2001:2::4]"
    assert url_host("[2001:2::4]") == "[2001:2::4]"
    assert url_host("198.18.0.4") == "198.18.0.4"
    assert url_host("www.example.com") == "www.example.com"


@pytest.mark.parametrize("address", ["198.18.0.4", "2001:2::4"])
def test_the_model_spells_a_real_server_key_the_same(address: str) -> None:
    # The model sits below net and keeps its own spelling of a key: they must agree.
    assert RealServer(address=address, port=80).key == host_port(address, 80)


def test_host_prefix() -> None:
    assert host_prefix("198.18.0.100") == "198.18.0.100/32"
    assert host_prefix("2001:2::100") == "2001:2::100/128"
    with pytest.raises(ValueError, match="does not appear to be"):
        host_prefix("lb1")


def test_mac_bytes_refuses_what_is_not_a_mac() -> None:
    assert mac_bytes("02:00:00:00:00:0B") == bytes.fromhex("02000000000b")
    assert mac_text(bytes.fromhex("02000000000b")) == "02:00:00:00:00:0b"
    for bad in ("02:00:00:00:00", "02-00-00-00-00-0b", "0g:00:00:00:00:0b", "2:0:0:0:0:b"):
        with pytest.raises(ValueError, match="is not a MAC address"):
            mac_bytes(bad)
