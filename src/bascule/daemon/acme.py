"""ACME: certificates of the store requested from a CA, validated over HTTP-01, kept renewed.

Where it sits: beside the certificate service (daemon/certificates.py), under the doors
(``bascule cert acme``, ``POST /certificates/acme``, the Certificates page). It speaks RFC 8555
with certbot's ``acme`` library (synchronous, so it runs in a worker thread), answers the CA's
HTTP-01 requests from the engines that can (``ChallengeResponder``: HAProxy answers
``/.well-known/acme-challenge/`` on every L7 HTTP listener on port 80 of the VIPs from a map
updated at runtime, so neither a reload nor a real server is involved), and hands the issued
certificate to the certificate service: stored, its file written, swapped into the running
engines without a reload when it replaces one.

Renewal: the daemon's loop (``run``) renews each order at two thirds of its certificate's
lifetime; a failure is recorded with the CA's own words (in the status, the API and the WUI)
and retried after an exponentially growing pause (``BACKOFF``). Accounts (their keys) and
orders are rows of the store (store/acme.py): they survive a restart.

Identifiers: a DNS name, or an IP address (RFC 8738), told apart by their spelling.

The ``acme`` library (with ``josepy``, ``requests``, ``urllib3`` and pyOpenSSL, ~6.5 MiB resident)
is imported by the worker thread of the first order, never at the daemon's start: most
appliances never speak ACME (docs/architecture.md, "What the daemon imports lazily").
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bascule import __version__
from bascule.daemon.certificates import CertificateChange, CertificateService, utc_now
from bascule.daemon.results import CertificateAlert
from bascule.engines.base import ChallengeResponder
from bascule.errors import AcmeFailed, BasculeError, InvalidCertificate, NotFound
from bascule.model.access import Actor
from bascule.pki.certificates import load_ca_bundle, load_certificate
from bascule.store.acme import AcmeAccount, AcmeOrder, AcmeStore, OrderState

if TYPE_CHECKING:
    from acme import client as acme_client
    from acme import messages
    from josepy.jwk import JWK

log = logging.getLogger("bascule.acme")

#: The level of a status alert for an order whose last attempt failed.
ACME_FAILED = "acme_failed"
#: Let's Encrypt's production directory: the default of ``--directory``.
DEFAULT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
#: Renew when this share of the certificate's lifetime has passed.
RENEW_AT = 2 / 3
#: After the n-th failure in a row, wait BACKOFF[min(n, len) - 1] before the next attempt.
BACKOFF = tuple(
    datetime.timedelta(seconds=s) for s in (60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400)
)
#: How long one attempt may take (the CA validates, then issues).
ORDER_TIMEOUT = datetime.timedelta(seconds=90)
MAX_DOMAINS = 100
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}$")
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
#: The CA's directory must be HTTPS (RFC 8555 section 6.1).
_DIRECTORY = re.compile(r"^https://[^\s]+$")

Clock = Callable[[], datetime.datetime]


@dataclass(frozen=True, kw_only=True)
class Challenge:
    """One HTTP-01 challenge to answer: the path the CA asks for and the answer."""

    path: str
    answer: str
    body: Any  # messages.ChallengeBody
    response: Any  # challenges.HTTP01Response


@dataclass(frozen=True, kw_only=True)
class Session:
    """A logged-in client and the order in progress (what the worker thread returns)."""

    client: acme_client.ClientV2
    order: messages.OrderResource
    key_pem: bytes
    challenges: tuple[Challenge, ...]


class AcmeService:
    """ACME orders over the certificate store, issued now and renewed by ``run``."""

    def __init__(
        self,
        store: AcmeStore,
        *,
        certificates: CertificateService,
        clock: Clock = utc_now,
        user_agent: str = f"bascule/{__version__}",
    ) -> None:
        self.store = store
        self.certificates = certificates
        self.clock = clock
        self.user_agent = user_agent
        self._lock = asyncio.Lock()  # one order at a time: challenges share the map
        certificates.on_delete.append(self.forget)

    # -- reading ------------------------------------------------------------------------------

    def order(self, name: str) -> AcmeOrder | None:
        return self.store.order(name)

    def orders(self) -> list[AcmeOrder]:
        return self.store.orders()

    def failures(self) -> list[AcmeOrder]:
        """The orders whose last attempt failed (their error is the CA's text)."""
        return [o for o in self.store.orders() if o.state is OrderState.failed]

    def alerts(self) -> tuple[CertificateAlert, ...]:
        """The failed orders, for the status: the CA's words and when it is tried again."""
        alerts = []
        for order in self.failures():
            when = (
                f"; next attempt {order.next_attempt:%Y-%m-%d %H:%M:%S} UTC"
                if order.next_attempt
                else ""
            )
            entry = self.certificates.store.entry(order.name)
            alerts.append(
                CertificateAlert(
                    name=order.name,
                    level=ACME_FAILED,
                    message=f"ACME could not issue {order.name} "
                    f"({order.failures} failure{'s' if order.failures > 1 else ''}): "
                    f"{order.last_error}{when}",
                    not_after=None if entry is None else entry.leaf.not_valid_after_utc,
                    used_by=self.certificates.used_by(order.name),
                )
            )
        return tuple(alerts)

    # -- requesting ---------------------------------------------------------------------------

    async def request(
        self,
        name: str,
        *,
        domains: Sequence[str],
        email: str,
        directory: str = DEFAULT_DIRECTORY,
        ca_bundle: bytes | None = None,
        actor: Actor,
    ) -> CertificateChange:
        """Define the order of ``name`` and issue it now; raise ``AcmeFailed`` with the CA's
        words when it fails (the order stays, and is retried with backoff)."""
        identifiers = _identifiers(domains)
        _check_email(email)
        if not _DIRECTORY.fullmatch(directory):
            raise InvalidCertificate("directory", "must be the CA's https:// directory URL")
        trust = b""
        if ca_bundle:
            trust = load_ca_bundle(ca_bundle, now=self.clock()).pem
        entry = self.certificates.store.entry(name)
        if entry is not None and entry.source.value != "acme":
            raise InvalidCertificate(
                "name",
                f"{name} is already in the store (not from ACME): choose another name, or "
                "delete it first",
            )
        self.certificates.check_name(name)
        self.store.save_order(
            name=name,
            directory=directory,
            email=email,
            domains=identifiers,
            ca_bundle=trust,
            at=self.clock(),
        )
        return await self._attempt(name, actor=actor, action="requested")

    async def renew(self, name: str, *, actor: Actor | str) -> CertificateChange:
        """Renew ``name`` now (whatever its lifetime left)."""
        if self.store.order(name) is None:
            raise NotFound(f"{name} is not kept by ACME")
        return await self._attempt(name, actor=actor, action="renewed")

    def forget(self, name: str) -> None:
        """Stop renewing ``name`` (its certificate stays in the store)."""
        self.store.delete_order(name)

    # -- renewing -----------------------------------------------------------------------------

    def due(self) -> list[AcmeOrder]:
        """The orders to attempt now: never issued, at two thirds of their lifetime, or
        failed and past their backoff."""
        now = self.clock()
        due = []
        for order in self.store.orders():
            if order.next_attempt is not None and now < order.next_attempt:
                continue
            if order.state is not OrderState.valid:
                due.append(order)
                continue
            entry = self.certificates.store.entry(order.name)
            if entry is None:
                due.append(order)
                continue
            leaf = entry.leaf
            start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
            if now >= start + (end - start) * RENEW_AT:
                due.append(order)
        return due

    async def renew_due(self) -> None:
        """One pass of the renewal loop."""
        for order in self.due():
            try:
                await self._attempt(order.name, actor="system", action="renewed")
            except BasculeError as exc:
                log.error(
                    "ACME renewal failed",
                    extra={"certificate": order.name, "error": str(exc)},
                )

    async def run(self, interval: float = 60.0) -> None:
        """The daemon's renewal loop."""
        while True:
            try:
                await self.renew_due()
            except (BasculeError, OSError) as exc:  # a store error: log, try again later
                log.error("ACME renewal pass failed", extra={"error": str(exc)})
            await asyncio.sleep(interval)

    # -- one attempt --------------------------------------------------------------------------

    async def _attempt(self, name: str, *, actor: Actor | str, action: str) -> CertificateChange:
        async with self._lock:
            order = self.store.order(name)
            if order is None:
                raise NotFound(f"{name} is not kept by ACME")
            try:
                bundle_pem, key_pem = await self._issue(order)
                bundle = load_certificate(bundle_pem, key_pem, now=self.clock())
                change = await self.certificates.store_issued(
                    name,
                    bundle,
                    actor=actor,
                    how=f"{action} by ACME ({order.directory}) for {', '.join(order.domains)}",
                )
            except BasculeError as exc:
                self._failed(order, exc)
                raise
            self.store.record(name, state=OrderState.valid, at=self.clock())
            log.info(
                f"certificate {name} {action} by ACME",
                extra={"certificate": name, "domains": ",".join(order.domains)},
            )
            return change

    def _failed(self, order: AcmeOrder, exc: BasculeError) -> None:
        failures = order.failures + 1
        wait = BACKOFF[min(failures, len(BACKOFF)) - 1]
        self.store.record(
            order.name,
            state=OrderState.failed,
            error=str(exc),
            failures=failures,
            next_attempt=self.clock() + wait,
            at=self.clock(),
        )

    async def _issue(self, order: AcmeOrder) -> tuple[bytes, bytes]:
        """Order, answer the challenges through the engines, finalize: (full chain, key)."""
        session = await asyncio.to_thread(self._open, order)
        responders = [
            e for e in self.certificates.config.engines if isinstance(e, ChallengeResponder)
        ]
        if not responders:
            raise AcmeFailed("no engine answers HTTP-01 challenges (HAProxy is not configured)")
        try:
            for challenge in session.challenges:
                for responder in responders:
                    await responder.set_challenge(challenge.path, challenge.answer)
            fullchain = await asyncio.to_thread(self._finish, session)
        finally:
            for challenge in session.challenges:
                for responder in responders:
                    try:
                        await responder.clear_challenge(challenge.path)
                    except (BasculeError, OSError) as exc:
                        log.warning("could not clear an ACME challenge", extra={"error": str(exc)})
        return fullchain, session.key_pem

    def _open(self, order: AcmeOrder) -> Session:
        """(worker thread) The account, a new key and CSR, a new order and its challenges."""
        from acme import challenges, crypto_util, errors, messages
        from requests import RequestException

        try:
            client, account_key = self._client(order)
            key_pem = _new_key()
            names = [d for d in order.domains if not _is_address(d)]
            addresses = [ipaddress.ip_address(d) for d in order.domains if _is_address(d)]
            csr = crypto_util.make_csr(key_pem, domains=names or None, ipaddrs=addresses or None)
            placed = client.new_order(csr)
            found: list[Challenge] = []
            for authorization in placed.authorizations:
                if authorization.body.status == messages.STATUS_VALID:
                    continue  # validated recently: nothing to answer
                http01 = [
                    c
                    for c in authorization.body.challenges
                    if isinstance(c.chall, challenges.HTTP01)
                ]
                if not http01:
                    raise AcmeFailed(
                        f"the CA offers no HTTP-01 challenge for "
                        f"{authorization.body.identifier.value}"
                    )
                body = http01[0]
                response, validation = body.response_and_validation(account_key)
                found.append(
                    Challenge(path=body.chall.path, answer=validation, body=body, response=response)
                )
        except (errors.Error, messages.Error, RequestException, ValueError) as exc:
            raise AcmeFailed(_ca_words(exc)) from exc
        return Session(client=client, order=placed, key_pem=key_pem, challenges=tuple(found))

    def _finish(self, session: Session) -> bytes:
        """(worker thread) Tell the CA the answers are up, wait for it to validate and issue."""
        from acme import errors, messages
        from requests import RequestException

        try:
            for challenge in session.challenges:
                session.client.answer_challenge(challenge.body, challenge.response)
            deadline = datetime.datetime.now() + ORDER_TIMEOUT
            done = session.client.poll_and_finalize(session.order, deadline)
        except (errors.Error, messages.Error, RequestException, ValueError) as exc:
            raise AcmeFailed(_ca_words(exc)) from exc
        if not done.fullchain_pem:
            raise AcmeFailed("the CA finalized the order without a certificate")
        return done.fullchain_pem.encode()

    def _client(self, order: AcmeOrder) -> tuple[acme_client.ClientV2, JWK]:
        """A client logged in to the order's CA with its stored account (made if new)."""
        from acme import client as acme_client
        from acme import errors, messages
        from josepy.jwk import JWKRSA

        account = self.store.account(order.directory, order.email)
        if account is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        else:
            key_pem = account.key_pem
            loaded = serialization.load_pem_private_key(key_pem, None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise AcmeFailed("the stored ACME account key is not an RSA key")
            key = loaded
        jwk = JWKRSA(key=key)
        verify: bool | str = True
        trust_file = None
        if order.ca_bundle:
            trust_file = self.certificates.directory / f".acme-{_safe(order.name)}.ca.pem"
            trust_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            trust_file.write_bytes(order.ca_bundle)
            verify = str(trust_file)
        # requests takes a CA file for `verify`; the library's annotation says bool only
        network = acme_client.ClientNetwork(jwk, user_agent=self.user_agent, verify_ssl=verify)  # type: ignore[arg-type]
        directory = acme_client.ClientV2.get_directory(order.directory, network)
        client = acme_client.ClientV2(directory, net=network)
        registration = messages.NewRegistration.from_data(
            email=order.email, terms_of_service_agreed=True
        )
        try:
            regr = client.new_account(registration)
        except errors.ConflictError as exc:  # this key has an account already: use it
            regr = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
            client.net.account = regr
        if account is None or account.uri != regr.uri:
            self.store.save_account(
                AcmeAccount(
                    directory=order.directory, email=order.email, key_pem=key_pem, uri=regr.uri
                ),
                at=self.clock(),
            )
        return client, jwk


def _identifiers(domains: Sequence[str]) -> tuple[str, ...]:
    if not domains:
        raise InvalidCertificate("domain", "give at least one --domain (a DNS name or address)")
    if len(domains) > MAX_DOMAINS:
        raise InvalidCertificate("domain", f"at most {MAX_DOMAINS} names per certificate")
    seen: list[str] = []
    for value in domains:
        text = value.strip().lower().rstrip(".")
        if _is_address(text):
            text = str(ipaddress.ip_address(text))
        elif not _DNS_NAME.fullmatch(text):
            raise InvalidCertificate(
                "domain", f"{value!r} is not a DNS name (www.example.com) or an IP address"
            )
        if text not in seen:
            seen.append(text)
    return tuple(seen)


def _check_email(email: str) -> None:
    if not _EMAIL.fullmatch(email):
        raise InvalidCertificate("email", f"{email!r} is not an e-mail address")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _new_key() -> bytes:
    """The certificate's own key: ECDSA P-256 (fast handshakes, every current client)."""
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _safe(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", name)


def _ca_words(exc: BaseException) -> str:
    """What went wrong, in the CA's own words where it gave some (RFC 7807 problem details)."""
    from acme import errors, messages
    from requests import RequestException

    if isinstance(exc, errors.ValidationError):
        parts = []
        for authorization in exc.failed_authzrs:
            for challenge in authorization.body.challenges:
                if challenge.error is not None:
                    parts.append(
                        f"{authorization.body.identifier.value}: {_problem(challenge.error)}"
                    )
        return "the CA could not validate " + ("; ".join(parts) or str(exc))
    if isinstance(exc, errors.IssuanceError):
        return f"the CA refused to issue: {_problem(exc.error)}"
    if isinstance(exc, messages.Error):
        return f"the CA refused: {_problem(exc)}"
    if isinstance(exc, errors.TimeoutError):
        return "the CA did not finish within 90 s (the order is retried later)"
    if isinstance(exc, RequestException):
        return f"cannot reach the CA: {exc}"
    return str(exc) or type(exc).__name__


def _problem(error: messages.Error) -> str:
    kind = (error.typ or "").removeprefix("urn:ietf:params:acme:error:")
    detail = error.detail or error.description or ""
    return f"{detail} ({kind})" if kind else detail
