"""Golden files for SSL offload in HAProxy's configuration, each checked by ``haproxy -c``.

The goldens (tests/golden/haproxy/tls/<case>.cfg, and <case>.crtlist for the crt-lists)
print the paths of an appliance's data directory; ``haproxy -c`` runs on the same view with
the store's files, crt-lists and ACME map written under a temporary directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from make_certificates import issue

from bascule.engines.haproxy import tls as offload
from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.view import DEFAULT_TLS_PATHS, HaproxyGlobals, HaproxyView, build_view
from bascule.model import ServiceType, parse_document
from bascule.model.tls import CIPHER_SETS, ClientCertificate, TlsVersion, VerifyServer

from .conftest import GOLDEN_DIR, UPDATE_GOLDEN

TLS_GOLDEN_DIR = GOLDEN_DIR / "tls"
GLOBALS = HaproxyGlobals(
    stats_socket="/run/bascule/haproxy.sock",
    maxconn=4096,
    nbthread=2,
    tls_paths=replace(DEFAULT_TLS_PATHS, acme_map="/var/lib/bascule/haproxy/acme.map"),
)
SERVERS = [{"address": "198.18.0.4", "port": 80}, {"address": "198.18.0.5", "port": 80}]
TLS_SERVERS = [{"address": "198.18.0.4", "port": 443}, {"address": "198.18.0.5", "port": 443}]


def https(**fields: Any) -> dict[str, Any]:
    tls = {"certificates": ["shop"], **fields.pop("tls", {})}
    return {
        "name": "shop",
        "address": "198.18.0.100",
        "port": 443,
        "type": "https",
        "real_servers": SERVERS,
        "tls": tls,
        **fields,
    }


CASES: dict[str, list[dict[str, Any]]] = {
    "https_defaults": [https()],
    "https_sni_three_certificates_h2_hsts_redirect": [
        https(
            tls={
                "certificates": ["shop", "shop-old", "api"],
                "http2": True,
                "hsts": 31536000,
                "redirect_http": True,
            }
        )
    ],
    "https_redirect_other_port": [https(port=8443, tls={"redirect_http": True})],
    "https_redirect_ipv6_wildcard": [https(address="::", tls={"redirect_http": True})],
    "cipher_set_modern": [https(tls={"cipher_set": "modern"})],
    "cipher_set_intermediate_tls1_3_only": [https(tls={"min_version": "tls1.3"})],
    "cipher_set_old_tls1_0": [https(tls={"cipher_set": "old"})],
    "cipher_set_old_from_tls1_2": [https(tls={"cipher_set": "old", "min_version": "tls1.2"})],
    "cipher_set_fips": [https(tls={"cipher_set": "fips", "max_version": "tls1.2"})],
    "client_certificate_required": [
        https(tls={"client_certificate": "required", "client_ca": "corp-ca"})
    ],
    "client_certificate_optional": [
        https(tls={"client_certificate": "optional", "client_ca": "corp-ca"})
    ],
    "reencrypt_verify_required": [
        https(
            real_servers=TLS_SERVERS,
            check={"type": "https", "path": "/health"},
            tls={
                "reencrypt": True,
                "verify_server": "required",
                "server_ca": "backend-ca",
                "server_sni": "app.internal.example",
            },
        )
    ],
    "reencrypt_client_host_as_sni": [
        https(real_servers=TLS_SERVERS, check={"type": "http"}, tls={"reencrypt": True})
    ],
    "reencrypt_tcp_check": [
        https(real_servers=TLS_SERVERS, check={"type": "tcp"}, tls={"reencrypt": True})
    ],
    "generic_tls_ldaps": [
        {
            "name": "ldaps",
            "address": "198.18.0.100",
            "port": 636,
            "type": "generic",
            "real_servers": [{"address": "198.18.0.4", "port": 389}],
            "check": {"type": "ldap"},
            "tls": {"certificates": ["ldap"], "client_certificate": "optional", "client_ca": "c"},
        }
    ],
    "starttls_smtp": [
        {
            "name": "mail",
            "address": "198.18.0.100",
            "port": 25,
            "type": "starttls",
            "starttls": "smtp",
            "real_servers": [{"address": "198.18.0.4", "port": 25}],
            "tls": {"certificates": ["mail"]},
        }
    ],
    "acme_on_plain_http_port_80": [
        {"name": "www", "address": "198.18.0.100", "port": 80, "real_servers": SERVERS},
        {
            "name": "www2",
            "address": "198.18.0.101",
            "port": 8080,
            "extra_ports": [80],
            "real_servers": SERVERS,
        },
        {"name": "other", "address": "198.18.0.102", "port": 8080, "real_servers": SERVERS},
    ],
    "https_persistence_active_cookie": [https(persistence={"method": "active_cookie"})],
    "https_disabled_with_redirect": [https(enabled=False, tls={"redirect_http": True})],
}


def view_of(case: str, globals_: HaproxyGlobals = GLOBALS) -> HaproxyView:
    return build_view(parse_document({"virtual_services": CASES[case]}), globals_)


def golden_compare(path: Path, text: str) -> None:
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"no golden file {path}; create it with BASCULE_UPDATE_GOLDEN=1")
    assert text == path.read_text(), f"{path} differs (BASCULE_UPDATE_GOLDEN=1 to update)"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    view = view_of(case)
    golden_compare(TLS_GOLDEN_DIR / f"{case}.cfg", render(view))
    lists = "".join(f"# {listed.path}\n{listed.text}" for listed in view.crt_lists)
    if lists:
        golden_compare(TLS_GOLDEN_DIR / f"{case}.crtlist", lists)


@pytest.mark.skipif(UPDATE_GOLDEN, reason="golden files are being rewritten")
def test_no_stale_golden_files() -> None:
    on_disk = {path.name for path in TLS_GOLDEN_DIR.iterdir()}
    expected = {f"{case}.cfg" for case in CASES}
    expected |= {f"{case}.crtlist" for case in CASES if view_of(case).crt_lists}
    assert on_disk == expected


@pytest.fixture(scope="module")
def store_files(tmp_path_factory: pytest.TempPathFactory) -> offload.TlsPaths:
    """Every certificate and CA bundle the cases name, written as the store writes them."""
    directory = tmp_path_factory.mktemp("store")
    ca = issue("Test CA", ca=True)
    leaf = issue("shop.example.test", issuer=ca, dns=("shop.example.test",))
    for name in ("shop", "shop-old", "api", "ldap", "mail"):
        (directory / f"{name}.pem").write_bytes(leaf.pem + ca.pem + leaf.key_pem)
    for name in ("corp-ca", "backend-ca", "c"):
        (directory / f"{name}.ca.pem").write_bytes(ca.pem)
    (directory / "crt-lists").mkdir()
    (directory / "acme.map").write_text("")
    return offload.TlsPaths(
        certificates_dir=str(directory),
        crt_list_dir=str(directory / "crt-lists"),
        acme_map=str(directory / "acme.map"),
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_haproxy_accepts(
    case: str, store_files: offload.TlsPaths, haproxy_check: Callable[..., str]
) -> None:
    view = view_of(case, replace(GLOBALS, tls_paths=store_files))
    for listed in view.crt_lists:
        Path(listed.path).write_text(listed.text)
    output = haproxy_check(render(view))
    assert "Configuration file is valid" in output


def test_translation_tables_cover_the_model() -> None:
    assert set(offload.VERSIONS) == set(TlsVersion)
    assert set(offload.CLIENT_VERIFY) == set(ClientCertificate)
    assert set(offload.SERVER_VERIFY) == set(VerifyServer)


def test_every_cipher_set_has_a_golden_case() -> None:
    assert all(any(f"cipher_set_{name}" in case for case in CASES) for name in CIPHER_SETS)


def test_crt_list_keeps_the_document_order_and_names_its_content() -> None:
    view = view_of("https_sni_three_certificates_h2_hsts_redirect")
    (listed,) = view.crt_lists
    assert listed.text.splitlines() == [
        "/var/lib/bascule/certificates/shop.pem",
        "/var/lib/bascule/certificates/shop-old.pem",
        "/var/lib/bascule/certificates/api.pem",
    ]
    other = view_of("https_defaults").crt_lists[0]
    assert other.path != listed.path  # another content, another file


def test_client_headers_are_always_removed_before_any_is_set() -> None:
    for case in ("https_defaults", "client_certificate_required"):
        rules = view_of(case).proxies[0].rules
        deletes = [i for i, r in enumerate(rules) if r.startswith("http-request del-header")]
        sets = [i for i, r in enumerate(rules) if "X-SSL-Client" in r and "set-header" in r]
        assert [rules[i] for i in deletes] == ["http-request del-header X-SSL-Client -m beg"]
        assert all(name.startswith(offload.CLIENT_HEADER_PREFIX) for name in offload.CLIENT_HEADERS)
        assert all(d < s for d in deletes for s in sets)


def test_starttls_proxy_listens_on_its_relay_not_the_vip() -> None:
    proxy = view_of("starttls_smtp").proxies[0]
    assert proxy.mode == "tcp"
    assert len(proxy.binds) == 1
    assert proxy.binds[0].startswith("127.") and "ssl" not in proxy.binds[0]
    assert not view_of("starttls_smtp").crt_lists
    config = parse_document({"virtual_services": CASES["starttls_smtp"]})
    assert config.virtual_services[0].type is ServiceType.starttls
