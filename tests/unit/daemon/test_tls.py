"""The HTTPS listener's certificate (generated once, then kept) and its settings."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import ValidationError

from bascule.daemon.tls import ensure_certificate
from bascule.errors import BasculeError
from bascule.settings import Settings, parse_listen


def san(cert: Path) -> tuple[set[str], set[str]]:
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    addresses = {str(a) for a in names.get_values_for_type(x509.IPAddress)}
    return addresses, set(names.get_values_for_type(x509.DNSName))


def test_a_self_signed_certificate_is_made_at_first_start(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    made = ensure_certificate(cert, key, listen_host="198.18.0.2")
    assert made.generated
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.parent.stat().st_mode) == 0o700
    assert b"PRIVATE KEY" in key.read_bytes()
    addresses, dns = san(cert)
    assert {"127.0.0.1", "::1", "198.18.0.2"} <= addresses
    assert "localhost" in dns
    assert len(made.fingerprint.split(":")) == 32
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    basic = loaded.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert not basic.ca  # a server certificate, usable as its own trust anchor (--ca-cert)

    again = ensure_certificate(cert, key, listen_host="198.18.0.2")
    assert not again.generated
    assert again.fingerprint == made.fingerprint


def test_a_wildcard_listen_address_is_not_a_subject_name(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert, key, listen_host="0.0.0.0")
    addresses, _ = san(cert)
    assert "0.0.0.0" not in addresses
    assert all(not ipaddress.ip_address(a).is_unspecified for a in addresses)


def test_half_a_pair_is_refused(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert, key, listen_host="127.0.0.1")
    key.unlink()
    with pytest.raises(BasculeError, match=r"key\.pem is missing"):
        ensure_certificate(cert, key, listen_host="127.0.0.1")
    assert cert.exists()  # nothing overwritten


def test_an_unreadable_certificate_is_an_error(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate")
    key.write_text("not a key")
    with pytest.raises(BasculeError, match="cannot read the TLS certificate"):
        ensure_certificate(cert, key, listen_host="127.0.0.1")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:8443", ("127.0.0.1", 8443)),
        ("0.0.0.0:443", ("0.0.0.0", 443)),
        ("[::1]:8443", ("::1", 8443)),
        (" none ", None),
        ("NONE", None),
    ],
)
def test_listen_addresses(text: str, parsed: tuple[str, int] | None) -> None:
    assert parse_listen(text) == parsed


@pytest.mark.parametrize("text", ["8443", "localhost:8443", "127.0.0.1:0", "127.0.0.1:x", ""])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="listen"):
        parse_listen(text)
    with pytest.raises(ValidationError):
        Settings(listen=text)


def test_listener_settings_defaults(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.listen_address == ("127.0.0.1", 8443)  # loopback unless configured
    assert settings.tls_cert_path == tmp_path / "tls" / "cert.pem"
    assert settings.tls_key_path == tmp_path / "tls" / "key.pem"
    assert (settings.session_idle_timeout, settings.lockout_attempts) == (900, 5)
    assert settings.lockout_seconds == 300 and settings.admin_password is None
    secret = Settings(data_dir=tmp_path, admin_password="s3cret-password")
    assert "s3cret" not in repr(secret)
