"""Model -> stunnel view: every decision about the STARTTLS front's configuration (pure).

Where this sits in the flow of a change: the reconciler hands the stunnel engine its share of
the document (``share``: the ``type: starttls`` services, without what only HAProxy uses);
``build_view`` turns it into ``key = value`` settings per service, which ``render`` prints.
Nothing here does I/O or reads settings: paths come in as ``StunnelGlobals``.

Each service (stunnel 5.68's manual, "SERVICE-LEVEL OPTIONS"):

- ``accept = <VIP>:<port>``: the front listens where clients connect;
- ``connect = <relay>``: the service's loopback relay (``model/tls.py: starttls_relay``),
  where HAProxy schedules and checks the real servers;
- ``protocol = smtp|imap|pop3``: stunnel speaks the greeting and STARTTLS as a server (it
  connects to the relay at once, so the real server's greeting reaches the client);
- ``cert``: the store's file for the service's certificate (certificate, chain, key);
- versions, ciphers, TLS 1.3 suites and groups from the model's one table (``CIPHER_SETS``),
  ``NO_TICKET`` as Mozilla's profiles, ``CIPHER_SERVER_PREFERENCE`` where the set says so,
  ``@SECLEVEL=0`` only below TLS 1.2 (as HAProxy's view).

stunnel's file has no quoting: a value is the rest of its line. Every value comes from the
validated model or the daemon's paths, and ``_value`` refuses anything that could end a line
or start a section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bascule.model import Configuration, ServiceType, StartTls, VirtualService
from bascule.model.capabilities import CheckType
from bascule.model.check import HealthCheck
from bascule.model.document import constructed
from bascule.model.persistence import Persistence
from bascule.model.tls import CIPHER_SETS, Tls, TlsVersion, starttls_relay

# "protocol": the application protocol whose STARTTLS stunnel negotiates, in server mode.
PROTOCOLS: dict[StartTls, str] = {
    StartTls.smtp: "smtp",
    StartTls.imap: "imap",
    StartTls.pop3: "pop3",
}

# "sslVersionMin" / "sslVersionMax".
VERSIONS: dict[TlsVersion, str] = {
    TlsVersion.tls1_0: "TLSv1",
    TlsVersion.tls1_1: "TLSv1.1",
    TlsVersion.tls1_2: "TLSv1.2",
    TlsVersion.tls1_3: "TLSv1.3",
}

LEGACY_FLOOR = TlsVersion.tls1_2
#: The address a configuration is checked on: any free port of loopback (no VIP needed).
CHECK_ACCEPT = "127.0.0.1:0"

_UNSAFE = re.compile(r"[\x00-\x1f\x7f\[\]]|^\s|\s$")


@dataclass(frozen=True, kw_only=True)
class StunnelGlobals:
    """The daemon's paths: the store's certificate files, the pid file (``""`` for none)."""

    certificates_dir: str
    pid_file: str


@dataclass(frozen=True, kw_only=True)
class ServiceView:
    """One ``[name]`` section."""

    name: str
    options: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class StunnelView:
    settings: tuple[tuple[str, str], ...]
    services: tuple[ServiceView, ...]


def share(config: Configuration) -> Configuration:
    """What the STARTTLS front runs of a document: its starttls services, with only what it
    reads of them (listener, protocol, tls). Real servers, checks and scheduling are HAProxy's,
    so a change of those is not the front's (it neither reloads nor plans for them)."""
    return constructed(
        Configuration,
        virtual_services=[
            vs.model_copy(
                update={
                    "real_servers": [],
                    "check": HealthCheck(type=CheckType.none),
                    "persistence": Persistence(),
                }
            )
            for vs in config.virtual_services
            if vs.type is ServiceType.starttls
        ],
    )


def build_view(
    config: Configuration, globals_: StunnelGlobals, *, check: bool = False
) -> StunnelView:
    """The configuration of ``config``'s starttls services. ``check``: the same, listening
    on a free loopback port and without a pid file, for a throwaway run that only proves
    stunnel accepts it (stunnel has no checking mode)."""
    settings = [("foreground", "yes"), ("syslog", "no"), ("debug", "notice")]
    settings.append(("pid", "" if check else _value(globals_.pid_file)))
    return StunnelView(
        settings=tuple(settings),
        services=tuple(
            _service(vs, globals_, check=check)
            for vs in config.virtual_services
            if vs.type is ServiceType.starttls and vs.enabled
        ),
    )


def _service(vs: VirtualService, globals_: StunnelGlobals, *, check: bool) -> ServiceView:
    tls = vs.tls
    if tls is None or vs.starttls is None:  # the model requires both for starttls
        raise ValueError(f"{vs.name}: a starttls service without tls or starttls")
    relay_host, relay_port = starttls_relay(vs.name, vs.port)
    options = [
        ("accept", CHECK_ACCEPT if check else _value(f"{vs.address}:{vs.port}")),
        ("connect", _value(f"{relay_host}:{relay_port}")),
        ("protocol", PROTOCOLS[vs.starttls]),
        ("cert", _value(f"{globals_.certificates_dir}/{tls.certificates[0]}.pem")),
        *_tls_options(tls),
    ]
    return ServiceView(name=_value(vs.name), options=tuple(options))


def _tls_options(tls: Tls) -> list[tuple[str, str]]:
    profile = CIPHER_SETS[tls.cipher_set]
    minimum = tls.effective_min_version
    options = [
        ("sslVersionMin", VERSIONS[minimum]),
        ("sslVersionMax", VERSIONS[tls.max_version]),
    ]
    ciphers = list(profile.ciphers)
    if ciphers and minimum.rank < LEGACY_FLOOR.rank and profile.legacy_security_level is not None:
        ciphers.insert(0, f"@SECLEVEL={profile.legacy_security_level}")
    if ciphers:
        options.append(("ciphers", ":".join(ciphers)))
    options.append(("ciphersuites", ":".join(profile.ciphersuites)))
    options.append(("curves", ":".join(profile.curves)))
    options.append(("options", "NO_TICKET"))
    if profile.server_preference:
        options.append(("options", "CIPHER_SERVER_PREFERENCE"))
    return options


def _value(text: str) -> str:
    """A value that stays on its line and in its section (stunnel has no quoting)."""
    if not text or _UNSAFE.search(text):
        raise ValueError(f"{text!r} cannot be written to a stunnel configuration")
    return text
