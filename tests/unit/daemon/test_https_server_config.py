"""The HTTPS listener's uvicorn settings (daemon/doors.py ``https_config``): modern TLS only,
no access log, no trust in forwarded headers."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from bascule.daemon.doors import https_config
from bascule.daemon.tls import ensure_certificate


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:  # pragma: no cover
    return


def test_tls_is_modern_whatever_uvicorn_defaults_to(tmp_path: Path) -> None:
    certificate = ensure_certificate(
        tmp_path / "cert.pem", tmp_path / "key.pem", listen_host="127.0.0.1"
    )
    config = https_config(app, "127.0.0.1", 8443, certificate)
    config.load()
    context = config.ssl
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    tls12 = [c for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"]
    names = {c["name"] for c in tls12}
    # uvicorn < 0.48's default ("TLSv1") left TLS 1.2 clients only CBC ciphers with SHA-1
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in names
    assert not [n for n in names if n.endswith("-SHA") or "NULL" in n or "RC4" in n]
    assert (config.access_log, config.proxy_headers, config.server_header) == (False,) * 3
