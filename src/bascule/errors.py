"""One error hierarchy for Bascule; every layer raises these, doors translate them.

The hierarchy says who is at fault::

    BasculeError
    ├── InvalidConfiguration     your desired state is invalid (carries FieldError values)
    │   └── InvalidCertificate   a certificate, key, chain or CA bundle you gave is refused
    ├── NotFound                 the thing you named does not exist (a revision, a service...)
    ├── NotApplicable            what you asked for does not apply to it (DSR help for NAT)
    ├── Conflict                 you edited a stale revision; carries the current one
    │   └── DivergedHistory      an HA peer committed other revisions under the same numbers
    ├── NotTheActive             this node is an HA pair's standby: write on the active
    ├── EngineError              an engine refused or failed
    │   ├── EngineRejected       the engine's own checker refused the rendered config
    │   └── ApplyFailed          applying failed; the previous working state was restored
    ├── StoreError               the configuration store could not be read or written
    ├── AcmeFailed               an ACME CA refused an order or could not validate it (its words)
    ├── DaemonUnavailable        the CLI could not reach the daemon
    ├── NotAuthenticated         no valid credentials (no or unknown token, expired session)
    │   ├── AuthenticationFailed wrong user name or password (one message for both)
    │   └── LockedOut            too many failed logins for that name; says for how long
    └── Forbidden                authenticated, but the role may not do this

Lower-layer exceptions (sqlite3, OSError, subprocess) are translated at the boundary with
``raise ... from exc`` so that callers only ever handle these.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class FieldError:
    """One problem in a document: where (``virtual_services[0].port``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class BasculeError(Exception):
    """Base of every error Bascule raises on purpose."""


class InvalidConfiguration(BasculeError):
    """The desired state is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FieldError] | tuple[FieldError, ...]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors) or "invalid configuration")


class InvalidCertificate(InvalidConfiguration):
    """A certificate, key, chain, PKCS#12 file or CA bundle is refused; ``errors`` name the
    input at fault (``key``, ``chain``, ``pkcs12``, ``name``...) and say why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__([FieldError(path=field, message=message)])


class AcmeFailed(BasculeError):
    """An ACME CA refused an order, could not validate it, or could not be reached; the
    message carries the CA's own words (its problem document's detail and type)."""


class NotFound(BasculeError):
    """A named object (revision, virtual service, real server) does not exist."""


class NotApplicable(BasculeError):
    """The request does not apply to the object named (e.g. DSR help for a NAT service)."""


class Conflict(BasculeError):
    """A write named a revision that is no longer the current one."""

    def __init__(self, *, base: int | None, current: int | None) -> None:
        self.base = base
        self.current = current
        super().__init__(
            f"revision {base} is stale: the current revision is {current}; "
            "re-read the configuration and apply your change again"
        )


class DivergedHistory(Conflict):
    """Two nodes of an HA pair hold different revisions under the same number (both committed
    while they could not reach each other): neither history is overwritten."""

    def __init__(self, *, number: int, current: int | None, detail: str = "") -> None:
        BasculeError.__init__(
            self,
            f"the histories diverge at revision {number}: both nodes committed a revision "
            "numbered so; nothing is overwritten" + (f" ({detail})" if detail else ""),
        )
        self.base = number
        self.current = current
        self.number = number


class NotTheActive(BasculeError):
    """A write reached the standby of an HA pair: configuration changes are made on the
    active only (daemon/pair.py), which ``active`` names (its address)."""

    def __init__(self, *, active: str, detail: str = "") -> None:
        self.active = active
        super().__init__(
            f"this node is the standby of an HA pair: make changes on the active, {active}"
            + (f" ({detail})" if detail else "")
        )


class EngineError(BasculeError):
    """An engine refused a configuration or failed to apply it."""


class EngineRejected(EngineError):
    """The engine's own checker (``haproxy -c``, ``nft -c``) refused the rendered config."""

    def __init__(self, engine: str, message: str, *, rejected_path: str | None = None) -> None:
        self.engine = engine
        self.checker_message = message
        self.rejected_path = rejected_path
        super().__init__(f"{engine} refused the configuration: {message}")


class ApplyFailed(EngineError):
    """Applying to the running engine failed; the last good state was restored."""


class StoreError(BasculeError):
    """The configuration store could not be read or written."""


class DaemonUnavailable(BasculeError):
    """The CLI could not reach the daemon's API."""


class NotAuthenticated(BasculeError):
    """The request carries no valid credentials (no token, an unknown one, an expired session)."""


class AuthenticationFailed(NotAuthenticated):
    """A login with a wrong user name or password; the message never says which."""

    def __init__(self, message: str = "wrong user name or password") -> None:
        super().__init__(message)


class LockedOut(NotAuthenticated):
    """Too many failed logins for one user name; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, round(retry_after))
        super().__init__(f"too many failed logins: try again in {self.retry_after} seconds")


class Forbidden(BasculeError):
    """The caller is authenticated, but their role does not allow this."""
