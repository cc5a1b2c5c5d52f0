"""The HA pair's peer, called over its pinned channel: URLs, fingerprints, revisions on the wire.

Under daemon/pair.py (the configuration sync) and daemon/ha.py (``takeover``). A call to the
peer trusts one certificate, the peer's pinned one, and nothing else (``pinned_context``), and
carries the token the peer minted for this node; ``fetch_certificate`` reads the certificate a
peer presents before anything is sent to it (``bascule ha join`` checks it against
``--fingerprint`` or ``--ca-cert`` first). Every answer that is not a success becomes
``NotApplicable`` in the peer's own words; no answer, ``DaemonUnavailable``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from bascule.errors import DaemonUnavailable, FieldError, InvalidConfiguration, NotApplicable
from bascule.pki.describe import fingerprint
from bascule.reconcile.diff import diff_from_json, diff_to_json
from bascule.store.pair import PairLink
from bascule.store.revisions import Revision

#: How long one call to the peer may take; a commit waits at most this for the standby.
CALL_TIMEOUT = 5.0
_HEX = re.compile(r"^[0-9a-f]{64}$")


def normalize_fingerprint(text: str) -> str:
    """``AB:CD:...`` (as ``bascule status`` and the daemon's log show it) from any spelling:
    upper or lower case, with or without colons, with or without ``sha256:``/``SHA256=``."""
    value = text.strip().lower()
    for prefix in ("sha256:", "sha256=", "sha-256:"):
        value = value.removeprefix(prefix)
    value = value.replace(":", "").replace(" ", "")
    if not _HEX.fullmatch(value):
        raise InvalidConfiguration(
            [
                FieldError(
                    path="fingerprint",
                    message="must be a SHA-256 fingerprint: 64 hex digits, colons allowed "
                    "(the daemon logs its listener's at start; GET /api/v1/system: tls.sha256)",
                )
            ]
        )
    return ":".join(value[i : i + 2] for i in range(0, 64, 2)).upper()


def parse_peer_url(url: str) -> tuple[str, int]:
    """(host, port) of ``https://ADDRESS:PORT`` (an IP address: the pair's nodes have no
    names to resolve); ``InvalidConfiguration`` on ``url`` otherwise."""

    def invalid(message: str) -> InvalidConfiguration:
        return InvalidConfiguration([FieldError(path="url", message=message)])

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise invalid(f"{exc}: give https://ADDRESS:PORT") from None
    if parts.scheme != "https":
        raise invalid("must be https://ADDRESS:PORT (the peer's HTTPS listener)")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise invalid("must be https://ADDRESS:PORT, without a path, query or user")
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise invalid(f"{host!r} is not an IP address: give the peer's node address") from None
    return host, port or 443


def base_url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def pinned_context(certificate_pem: str) -> ssl.SSLContext:
    """A client context whose only trust anchor is the pinned certificate: a peer presenting
    any other certificate fails the handshake, before a token is sent."""
    context = ssl.create_default_context(cadata=certificate_pem)
    context.check_hostname = False  # the pin is the identity: an address may change
    # the pinned certificate may be a leaf signed by a CA: trusting it alone is enough
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def fetch_certificate(host: str, port: int, *, ca_pem: str | None) -> str:
    """The certificate ``host:port`` presents (PEM), verified against ``ca_pem`` when given
    (blocking: run it in a thread). Nothing but the TLS handshake is sent."""
    try:
        if ca_pem is None:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # only read: checked against the fingerprint
        else:
            context = ssl.create_default_context(cadata=ca_pem)
            context.check_hostname = False
        with (
            socket.create_connection((host, port), timeout=CALL_TIMEOUT) as raw,
            context.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        raise InvalidConfiguration(
            [FieldError(path="ca_cert", message=f"the peer's certificate is refused: {exc}")]
        ) from None
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise DaemonUnavailable(f"cannot reach the peer at {host}:{port}: {exc}") from exc
    if der is None:  # pragma: no cover (a TLS server always presents one)
        raise DaemonUnavailable(f"the peer at {host}:{port} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der)


def certificate_fingerprint(pem: str, *, field: str = "certificate") -> str:
    try:
        return fingerprint(x509.load_pem_x509_certificate(pem.encode()))
    except ValueError as exc:
        raise InvalidConfiguration(
            [FieldError(path=field, message=f"not a PEM certificate: {exc}")]
        ) from None


# -- revisions on the wire ---------------------------------------------------------------------


def revision_to_wire(revision: Revision) -> dict[str, Any]:
    return {
        "number": revision.number,
        "created_at": revision.created_at.isoformat(),
        "author": revision.author,
        "message": revision.message,
        "document": revision.document,
        "diff": diff_to_json(revision.diff),
        "rolled_back_from": revision.rolled_back_from,
    }


def revision_from_wire(data: Mapping[str, Any], index: int) -> Revision:
    try:
        created_at = datetime.fromisoformat(str(data["created_at"]))
        if created_at.tzinfo is None:
            raise ValueError("created_at has no time zone")
        number = data["number"]
        origin = data.get("rolled_back_from")
        if not isinstance(number, int) or number < 1:
            raise ValueError("number must be a positive integer")
        if origin is not None and not isinstance(origin, int):
            raise ValueError("rolled_back_from must be an integer")
        document = data["document"]
        if not isinstance(document, dict):
            raise ValueError("document must be an object")
        return Revision(
            number=number,
            created_at=created_at,
            author=str(data["author"]),
            message=str(data["message"]),
            document=document,
            diff=diff_from_json(data["diff"]),
            rolled_back_from=origin,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidConfiguration(
            [FieldError(path=f"revisions[{index}]", message=str(exc))]
        ) from None


# -- the pinned client ----------------------------------------------------------------------------


class PeerClient:
    """Calls to the peer's API: its pinned certificate, this node's token."""

    def __init__(self, link: PairLink) -> None:
        self.link = link

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        within: float = CALL_TIMEOUT,
    ) -> dict[str, Any]:
        url = self.link.peer_url + "/api/v1/ha/peer" + path
        try:
            async with httpx.AsyncClient(
                verify=pinned_context(self.link.peer_cert), timeout=within
            ) as client:
                response = await client.request(
                    method,
                    url,
                    json=body,
                    params=params,
                    headers={"Authorization": f"Bearer {self.link.peer_token}"},
                )
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            raise DaemonUnavailable(
                f"cannot reach the peer at {self.link.peer_url}: {exc or type(exc).__name__}"
            ) from exc
        return answer(response, self.link.peer_url)


def answer(response: httpx.Response, peer: str) -> dict[str, Any]:
    """The peer's JSON answer; its refusal, in its words, as ``NotApplicable``."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_success and isinstance(data, dict):
        return data
    message = ""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        message = str(data["error"].get("message", ""))
    raise NotApplicable(
        f"the peer at {peer} refused ({response.status_code}): {message or response.text[:200]}"
    )
