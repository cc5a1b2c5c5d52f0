"""The STARTTLS front's configuration: golden files (tests/golden/stunnel/<case>.conf), each
accepted by the real stunnel4 (its check variant, run in a throwaway process), the view's
decisions, and the translation tables covering the model."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from make_certificates import hierarchy

from bascule.engines.stunnel.render import render
from bascule.engines.stunnel.shell import StunnelPaths, StunnelShell
from bascule.engines.stunnel.view import (
    PROTOCOLS,
    VERSIONS,
    StunnelGlobals,
    build_view,
    share,
)
from bascule.errors import EngineRejected
from bascule.model import ServiceType, StartTls, parse_document
from bascule.model.tls import TlsVersion, starttls_relay

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "stunnel"
UPDATE_GOLDEN = os.environ.get("BASCULE_UPDATE_GOLDEN") == "1"
GLOBALS = StunnelGlobals(
    certificates_dir="/var/lib/bascule/certificates",
    pid_file="/var/lib/bascule/stunnel/stunnel.pid",
)
STUNNEL = shutil.which("stunnel4")


def mail(protocol: str, port: int, **tls: Any) -> dict[str, Any]:
    return {
        "name": f"mail-{protocol}",
        "address": "198.18.0.100",
        "port": port,
        "type": "starttls",
        "starttls": protocol,
        "real_servers": [{"address": "198.18.0.4", "port": port}],
        "tls": {"certificates": ["mail"], **tls},
    }


CASES: dict[str, list[dict[str, Any]]] = {
    "smtp_imap_pop3": [mail("smtp", 25), mail("imap", 143), mail("pop3", 110)],
    "cipher_set_modern": [mail("smtp", 25, cipher_set="modern")],
    "cipher_set_old_tls1_0": [mail("smtp", 25, cipher_set="old")],
    "cipher_set_fips": [mail("imap", 143, cipher_set="fips")],
    "ipv6_vip": [{**mail("smtp", 587), "address": "2001:2::100"}],
    "with_http_services": [
        mail("smtp", 25),
        {"name": "web", "address": "198.18.0.100", "port": 80, "real_servers": []},
    ],
    "disabled": [{**mail("smtp", 25), "enabled": False}],
}


def config_of(case: str) -> Any:
    return share(parse_document({"virtual_services": CASES[case]}))


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    text = render(build_view(config_of(case), GLOBALS))
    path = GOLDEN_DIR / f"{case}.conf"
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no golden file {path}; create it with BASCULE_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs (BASCULE_UPDATE_GOLDEN=1 to update)"


@pytest.mark.skipif(UPDATE_GOLDEN, reason="golden files are being rewritten")
def test_no_stale_golden_files() -> None:
    assert {p.stem for p in GOLDEN_DIR.glob("*.conf")} == set(CASES)


@pytest.mark.skipif(STUNNEL is None, reason="stunnel4 is not installed")
@pytest.mark.parametrize("case", sorted(CASES))
def test_stunnel_accepts(case: str, tmp_path: Path) -> None:
    h = hierarchy()
    (tmp_path / "mail.pem").write_bytes(h.leaf.pem + h.intermediate.pem + h.leaf.key_pem)
    (tmp_path / "mail.pem").chmod(0o600)
    globals_ = StunnelGlobals(certificates_dir=str(tmp_path), pid_file="")
    view = build_view(config_of(case), globals_, check=True)
    if not view.services:  # nothing to run: the engine does not start stunnel at all
        assert case == "disabled"
        return
    shell = StunnelShell(StunnelPaths.under(tmp_path / "run"), binary=str(STUNNEL))
    asyncio.run(shell.check(render(view)))


@pytest.mark.skipif(STUNNEL is None, reason="stunnel4 is not installed")
def test_stunnel_refusals_are_reported(tmp_path: Path) -> None:
    globals_ = StunnelGlobals(certificates_dir=str(tmp_path), pid_file="")
    text = render(build_view(config_of("smtp_imap_pop3"), globals_, check=True))  # no cert file
    shell = StunnelShell(StunnelPaths.under(tmp_path / "run"), binary=str(STUNNEL))
    with pytest.raises(EngineRejected) as caught:
        asyncio.run(shell.check(text))
    assert "Service [mail-smtp]: Failed to initialize TLS context" in str(caught.value)


def test_share_is_the_starttls_services_without_what_haproxy_runs() -> None:
    shared = config_of("with_http_services")
    assert [vs.name for vs in shared.virtual_services] == ["mail-smtp"]
    (vs,) = shared.virtual_services
    assert vs.real_servers == [] and vs.check.type.value == "none"
    assert vs.type is ServiceType.starttls


def test_each_service_connects_to_its_relay() -> None:
    (service, *_) = build_view(config_of("smtp_imap_pop3"), GLOBALS).services
    options = dict(service.options)
    host, port = starttls_relay("mail-smtp", 25)
    assert options["accept"] == "198.18.0.100:25"
    assert options["connect"] == f"{host}:{port}"
    assert options["protocol"] == "smtp"
    assert options["cert"] == "/var/lib/bascule/certificates/mail.pem"


def test_values_that_would_break_a_line_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        build_view(
            config_of("smtp_imap_pop3"), StunnelGlobals(certificates_dir="/a\nb", pid_file="")
        )


def test_translation_tables_cover_the_model() -> None:
    assert set(PROTOCOLS) == set(StartTls)
    assert set(VERSIONS) == set(TlsVersion)
