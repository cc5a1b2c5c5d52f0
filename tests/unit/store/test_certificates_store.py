"""The certificate store: rows by name, no key on any read path, files for HAProxy, backups."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from make_certificates import NOW, Hierarchy, hierarchy, issue

from bascule.errors import InvalidCertificate, NotFound
from bascule.pki import keyset
from bascule.pki.certificates import load_ca_bundle, load_certificate
from bascule.pki.selfsigned import self_signed
from bascule.store.certificates import CertificateStore, EntryKind, Source

PASSPHRASE = "a long enough passphrase"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CertificateStore]:
    with CertificateStore(tmp_path / "bascule.db") as opened:
        yield opened


@pytest.fixture(scope="module")
def pki() -> Hierarchy:
    return hierarchy()


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    # scrypt's cost is not under test here (test_keyset.py checks the default)
    monkeypatch.setattr(keyset.seal_keys, "__kwdefaults__", {"cost": 2**4})


def test_add_list_and_read_without_keys(store: CertificateStore, pki: Hierarchy) -> None:
    bundle = load_certificate(pki.leaf.pem, pki.leaf.key_pem, pki.intermediate.pem, now=NOW)
    added = store.add("shop", bundle, at=NOW)
    store.add("corp-ca", load_ca_bundle(pki.root.pem, now=NOW), at=NOW)
    assert added.kind is EntryKind.certificate and added.has_key
    assert added.leaf == pki.leaf.certificate
    assert [e.name for e in store.entries()] == ["corp-ca", "shop"]
    ca = store.entry("corp-ca")
    assert ca is not None and ca.kind is EntryKind.ca_bundle and not ca.has_key
    for entry in store.entries():
        assert b"PRIVATE KEY" not in entry.certificate_pem + entry.chain_pem
        assert not any("key" in field and field != "has_key" for field in vars(entry))
    assert store.entry("nothing") is None


def test_a_name_clash_is_refused_across_kinds(store: CertificateStore, pki: Hierarchy) -> None:
    store.add("shop", self_signed(dns=["shop.example.test"], now=NOW), at=NOW)
    with pytest.raises(InvalidCertificate, match=r"^name: shop is already in the certificate"):
        store.add("shop", self_signed(dns=["other.example.test"], now=NOW), at=NOW)
    with pytest.raises(InvalidCertificate, match=r"^name: shop is already"):
        store.add("shop", load_ca_bundle(pki.root.pem, now=NOW), at=NOW)


@pytest.mark.parametrize("name", ["Shop", "a_b", "", "-x", "x" * 64])
def test_bad_names_are_refused(store: CertificateStore, name: str) -> None:
    with pytest.raises(InvalidCertificate, match=r"^name: must be 1 to 63"):
        store.add(name, self_signed(dns=["a.example.test"], now=NOW), at=NOW)


def test_replace_keeps_the_kind_and_delete(store: CertificateStore, pki: Hierarchy) -> None:
    store.add(
        "shop", self_signed(dns=["shop.example.test"], now=NOW), source=Source.self_signed, at=NOW
    )
    new = self_signed(dns=["shop.example.test"], now=NOW)
    replaced = store.replace("shop", new, at=NOW)
    assert replaced.leaf == new.certificate and replaced.source is Source.imported
    with pytest.raises(InvalidCertificate, match=r"^name: shop is a certificate"):
        store.replace("shop", load_ca_bundle(pki.root.pem, now=NOW), at=NOW)
    with pytest.raises(NotFound):
        store.replace("nothing", new, at=NOW)
    store.delete("shop")
    assert store.entries() == []
    with pytest.raises(NotFound):
        store.delete("shop")


def test_files_for_haproxy_are_0600_in_a_0700_directory(
    store: CertificateStore, pki: Hierarchy, tmp_path: Path
) -> None:
    bundle = load_certificate(pki.leaf.pem, pki.leaf.key_pem, pki.intermediate.pem, now=NOW)
    store.add("shop", bundle, at=NOW)
    store.add("corp-ca", load_ca_bundle(pki.root.pem, now=NOW), at=NOW)
    directory = tmp_path / "tls"
    (directory).mkdir(mode=0o755)
    (directory / "stale.pem").write_text("old")
    paths = store.write_files(directory)
    assert paths == {"shop": directory / "shop.pem", "corp-ca": directory / "corp-ca.ca.pem"}
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(p.name for p in directory.iterdir()) == ["corp-ca.ca.pem", "shop.pem"]
    for path in paths.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert paths["shop"].read_bytes() == bundle.engine_pem()


def test_a_backup_without_a_passphrase_carries_no_key(
    store: CertificateStore, pki: Hierarchy, tmp_path: Path
) -> None:
    store.add("shop", load_certificate(pki.leaf.pem, pki.leaf.key_pem, now=NOW), at=NOW)
    backup = store.export()
    assert backup["keys"] is None
    assert "PRIVATE KEY" not in json.dumps(backup)
    with CertificateStore(tmp_path / "elsewhere.db") as other:
        report = other.restore(backup, at=NOW)
        assert report.restored == ("shop",) and report.without_key == ("shop",)
        assert "this backup carries no private keys" in report.message
        entry = other.entry("shop")
        assert entry is not None and not entry.has_key
        assert other.write_files(tmp_path / "files") == {}  # a keyless certificate cannot serve
    # restored where its key still is, the key stays
    report = store.restore(backup, at=NOW)
    assert report.without_key == ()
    entry = store.entry("shop")
    assert entry is not None and entry.has_key


def test_a_backup_with_sealed_keys_restores_them(
    store: CertificateStore, pki: Hierarchy, tmp_path: Path
) -> None:
    store.add("shop", load_certificate(pki.leaf.pem, pki.leaf.key_pem, now=NOW), at=NOW)
    store.add("corp-ca", load_ca_bundle(pki.root.pem, now=NOW), at=NOW)
    backup = json.loads(json.dumps(store.export(PASSPHRASE)))  # through a file
    assert "PRIVATE KEY" not in json.dumps(backup)
    with CertificateStore(tmp_path / "elsewhere.db") as other:
        with pytest.raises(InvalidCertificate, match=r"^passphrase: this backup's private keys"):
            other.restore(backup, at=NOW)
        with pytest.raises(InvalidCertificate, match=r"^passphrase: wrong passphrase"):
            other.restore(backup, "not the passphrase", at=NOW)
        assert other.entries() == []  # refused: nothing changed
        report = other.restore(backup, PASSPHRASE, at=NOW)
        assert report.restored == ("corp-ca", "shop") and report.without_key == ()
        assert "no private keys" not in report.message
        files = other.write_files(tmp_path / "files")
        assert pki.leaf.key_pem in files["shop"].read_bytes()


def test_a_backup_whose_certificates_were_swapped_is_refused(
    store: CertificateStore, pki: Hierarchy
) -> None:
    store.add("shop", load_certificate(pki.leaf.pem, pki.leaf.key_pem, now=NOW), at=NOW)
    backup = store.export(PASSPHRASE)
    backup["entries"][0]["certificate"] = issue("evil.example.test").pem.decode()
    with pytest.raises(InvalidCertificate, match="or the backup was altered"):
        store.restore(backup, PASSPHRASE, at=NOW)


def test_a_damaged_backup_is_refused(store: CertificateStore) -> None:
    with pytest.raises(InvalidCertificate, match=r"^certificates: not a certificate store backup"):
        store.restore({"format": "something"}, at=NOW)
    damaged = {"format": "bascule-certificates/1", "entries": [{"name": "x"}], "keys": None}
    with pytest.raises(InvalidCertificate, match=r"^certificates\[0\]: is damaged"):
        store.restore(damaged, at=NOW)
