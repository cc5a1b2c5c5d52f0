"""``bascule cert ...`` end to end against a real API server on a unix socket (test_cli's
daemon): add from files and PKCS#12, self-signed, list with expiry and usage, show, replace,
delete refused while used, CA bundles; errors name the option at fault."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from make_certificates import hierarchy
from test_cli import Daemon, daemon, failed, ok, run  # noqa: F401 - daemon is a fixture

SHOP = """\
virtual_services:
  - name: shop
    address: 198.18.0.100
    port: 443
    type: https
    tls: {certificates: [shop]}
    real_servers: [{address: 198.18.0.4, port: 80}]
"""


def files(tmp_path: Path) -> dict[str, Path]:
    h = hierarchy(datetime.now(UTC))
    paths = {
        "cert": tmp_path / "cert.pem",
        "key": tmp_path / "key.pem",
        "chain": tmp_path / "chain.pem",
        "root": tmp_path / "root.pem",
        "p12": tmp_path / "shop.p12",
        "password": tmp_path / "password.txt",
    }
    paths["cert"].write_bytes(h.leaf.pem)
    paths["key"].write_bytes(h.leaf.key_pem)
    paths["chain"].write_bytes(h.intermediate.pem)
    paths["root"].write_bytes(h.root.pem)
    paths["p12"].write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"shop",
            h.leaf.key,  # type: ignore[arg-type]
            h.leaf.certificate,
            [h.intermediate.certificate],
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    paths["password"].write_text("s3cret\n")
    return paths


def test_add_list_show_replace_delete(daemon: Daemon, tmp_path: Path) -> None:  # noqa: F811
    f = files(tmp_path)
    added = ok(
        run(
            daemon,
            "cert", "add", "shop",
            "--cert", str(f["cert"]), "--key", str(f["key"]), "--chain", str(f["chain"]),
        )
    )  # fmt: skip
    assert "added shop: CN=www.example.test" in added.stdout
    ok(run(daemon, "cert", "self-signed", "lab", "--dns", "a.test,b.test", "--ip", "198.18.0.100"))
    ok(run(daemon, "cert", "ca", "add", "corp", "--file", str(f["root"])))
    listed = ok(run(daemon, "cert", "list")).stdout
    for words in ("shop", "CN=Test Intermediate CA", "lab", "a.test, b.test, 198.18.0.100"):
        assert words in listed
    assert "CA bundle" in listed and "ECDSA P-256" in listed
    config = tmp_path / "shop.yaml"
    config.write_text(SHOP)
    ok(run(daemon, "apply", "-f", str(config), "--force"))
    shown = json.loads(ok(run(daemon, "--json", "cert", "show", "shop")).stdout)
    assert shown["used_by"] == ["shop"]
    assert "PRIVATE KEY" not in json.dumps(shown)
    text = ok(run(daemon, "cert", "show", "shop")).stdout
    assert "used by" in text and "SHA-256" in text
    replaced = ok(
        run(
            daemon,
            "cert", "replace", "shop",
            "--pkcs12", str(f["p12"]), "--password-file", str(f["password"]),
        )
    )  # fmt: skip
    assert "replaced shop" in replaced.stdout
    refused = failed(run(daemon, "cert", "delete", "shop"))
    assert any("used by virtual service shop" in line for line in refused)
    ok(run(daemon, "cert", "delete", "lab"))
    assert "lab" not in ok(run(daemon, "cert", "list")).stdout


def test_errors_name_what_is_wrong(daemon: Daemon, tmp_path: Path) -> None:  # noqa: F811
    f = files(tmp_path)
    lines = failed(
        run(daemon, "cert", "add", "shop", "--cert", str(f["cert"]), "--key", str(f["root"]))
    )
    assert any(line.startswith("error: key:") for line in lines), lines
    lines = failed(run(daemon, "cert", "add", "shop", "--key", str(f["key"])))
    assert any("--cert FILE" in line for line in lines)
    lines = failed(run(daemon, "cert", "add", "shop", "--cert", str(tmp_path / "missing.pem")))
    assert any("--cert" in line and "missing.pem" in line for line in lines)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("nope\n")
    lines = failed(
        run(daemon, "cert", "add", "p", "--pkcs12", str(f["p12"]), "--password-file", str(wrong))
    )
    assert any(line.startswith("error: pkcs12:") for line in lines), lines
    lines = failed(run(daemon, "cert", "self-signed", "x", "--dns", "not a name"))
    assert any(line.startswith("error: dns:") for line in lines), lines


def test_backup_with_sealed_keys_and_restore(daemon: Daemon, tmp_path: Path) -> None:  # noqa: F811
    ok(run(daemon, "cert", "self-signed", "shop", "--dns", "shop.test"))
    config = tmp_path / "shop.yaml"
    config.write_text(SHOP)
    ok(run(daemon, "apply", "-f", str(config), "--force"))
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("a long enough passphrase\n")
    plain = tmp_path / "plain.yaml"
    sealed = tmp_path / "sealed.yaml"
    sealed.write_text("an older file, readable by all\n")
    sealed.chmod(0o644)  # written over: 0600 all the same
    ok(run(daemon, "backup", "-o", str(plain)))
    ok(
        run(
            daemon, "backup", "--with-keys", "--passphrase-file", str(passphrase), "-o", str(sealed)
        )
    )
    assert "certificate_store" in plain.read_text() and "PRIVATE KEY" not in plain.read_text()
    assert "ciphertext" in sealed.read_text() and "PRIVATE KEY" not in sealed.read_text()
    assert sealed.stat().st_mode & 0o777 == 0o600
    empty = tmp_path / "empty.yaml"
    empty.write_text("virtual_services: []\n")
    ok(run(daemon, "apply", "-f", str(empty), "--force"))
    ok(run(daemon, "cert", "delete", "shop"))
    # sealed keys: the passphrase is asked for (here typed at the prompt)
    restored = ok(run(daemon, "restore", str(sealed), input="a long enough passphrase\n"))
    assert "1 certificate store entries restored" in restored.stdout
    assert "applied" in restored.stdout
    listed = json.loads(ok(run(daemon, "--json", "cert", "list")).stdout)["items"]
    assert [(c["name"], c["has_key"], c["used_by"]) for c in listed] == [("shop", True, ["shop"])]
