"""Settings of the daemon and the CLI (pydantic-settings, ``BASCULE_*`` environment variables).

Passed in to whoever needs them; never imported by model, reconcile or engines.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("/var/lib/bascule")
#: The daemon's log levels (``--log-level``, ``BASCULE_LOG_LEVEL``), in either case.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASCULE_", extra="ignore")

    data_dir: Path = DEFAULT_DATA_DIR
    haproxy_binary: str = "haproxy"
    # The STARTTLS front of type: starttls services (Debian's stunnel4).
    stunnel_binary: str = "stunnel4"
    # The HA pair's VRRP (Debian's keepalived), run only by a document with high_availability.
    keepalived_binary: str = "keepalived"
    # A joined pair's L4 flows, copied to the peer's kernel (Debian's conntrackd).
    conntrackd_binary: str = "conntrackd"
    # How long `bascule stop --data-plane` lets connections finish before HAProxy is stopped
    # for good (SIGTERM stops the daemon only: the data plane runs on).
    shutdown_grace: float = 10.0
    # Real servers added to or removed from a running HTTP/TCP service through HAProxy's
    # runtime API (add/del server) instead of a reload (engines/haproxy/dynamic.py). HAProxy
    # 2.6 never reuses an idle connection to a server added so (keep-alive 2.6x slower), so
    # a seamless reload of the file already written follows, deferred: this many seconds
    # after the last such change (each one pushes it back: a burst costs one reload), and at
    # most the max delay after the first (docs/architecture.md).
    haproxy_dynamic_servers: bool = True
    haproxy_deferred_reload_delay: float = Field(default=3.0, gt=0, le=3600)
    haproxy_deferred_reload_max_delay: float = Field(default=30.0, gt=0, le=3600)
    # How often the daemon re-reads the engines and repairs drift.
    reconcile_interval: float = 5.0
    # How often the statistics sampler reads the counters (seconds, > 0; graphs use 10 s steps).
    stats_interval: float = Field(default=10.0, gt=0)
    log_level: str = "INFO"
    # Request logs on disk (daemon/request_logs.py): rotated at this size, this many kept.
    request_log_max_mb: float = Field(default=50.0, gt=0)
    request_log_keep: int = Field(default=5, ge=1)
    # Log files (haproxy/haproxy.log; the daemon's own when its stderr is a file) are rotated
    # past this size, keeping this many older copies (daemon/logfiles.py).
    log_file_max_bytes: int = Field(default=10 * 1024 * 1024, ge=64 * 1024)
    log_file_backups: int = Field(default=3, ge=0, le=100)
    # The HTTPS management listener (API + WUI): "ADDRESS:PORT" ("[::1]:8443" for IPv6), or
    # "none" for the unix socket only. Beyond loopback only when configured.
    listen: str = "127.0.0.1:8443"
    # Its bounds (daemon/listener.py; docs/security.md): connections in all and per client
    # source (an IPv4 address or an IPv6 /64), and the time a client has for the TLS handshake,
    # a request's head (from its first byte), its body, and between two requests. The total is
    # lowered at start to keep half the descriptors (at least 256) for everything else.
    listen_max_connections: int = Field(default=512, ge=1)
    listen_max_per_source: int = Field(default=32, ge=1)
    listen_handshake_timeout: float = Field(default=10.0, gt=0)
    listen_header_timeout: float = Field(default=10.0, gt=0)
    listen_body_timeout: float = Field(default=60.0, gt=0)
    listen_idle_timeout: int = Field(default=5, ge=1)
    # Its certificate and key (PEM); generated self-signed at first start when both are missing.
    tls_cert: Path | None = None  # default data_dir/tls/cert.pem
    tls_key: Path | None = None  # default data_dir/tls/key.pem
    # HAProxy's peers listener, which hands the stick tables (persistence) to a reloaded worker
    # (engines/haproxy/peers.py): by default a unix socket in HAProxy's run directory, which
    # only root reaches. For the HA pair (issue 16), "ADDRESS:PORT" on the network, which needs
    # TLS with verified certificates: peers_tls_cert (this node's certificate and key, one PEM
    # file) and peers_tls_ca (the CA that signed both nodes' certificates).
    peers_listen: str | None = None
    peers_tls_cert: Path | None = None
    peers_tls_ca: Path | None = None
    # WUI sessions end after this many seconds without activity.
    session_idle_timeout: float = Field(default=900.0, gt=0)
    # The password guard (daemon/guard.py; docs/security.md): this many failed password checks
    # (logins, or a current password given to change it) within lockout_seconds lock, for
    # lockout_seconds, one account from one source; lockout_source_attempts lock the source
    # (whatever the name); lockout_account_attempts lock the account for every source it has
    # not logged in from within 30 days.
    lockout_attempts: int = Field(default=5, ge=1)
    lockout_source_attempts: int = Field(default=20, ge=1)
    lockout_account_attempts: int = Field(default=50, ge=1)
    lockout_seconds: float = Field(default=300.0, gt=0)
    # How often ACME orders are looked at for renewal (at 2/3 of a certificate's lifetime).
    acme_interval: float = Field(default=60.0, gt=0)
    # The first start's admin password (BASCULE_ADMIN_PASSWORD); random and printed if unset.
    admin_password: SecretStr | None = None
    # Retention (daemon/retention.py, pruned every hour): audit entries older than this many
    # days go, then the oldest until the log holds at most audit_max_mb MiB; the history keeps
    # the newest revisions_keep revisions within revisions_max_mb MiB, and always the head and
    # the revisions the engines run on.
    audit_retention_days: float = Field(default=365.0, gt=0)
    audit_max_mb: float = Field(default=64.0, gt=0)
    revisions_keep: int = Field(default=1000, ge=1)
    revisions_max_mb: float = Field(default=256.0, gt=0)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(
                f"log_level must be one of {', '.join(LOG_LEVELS).lower()}, not {value!r}"
            )
        return level

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value.strip()

    @model_validator(mode="after")
    def _peers_on_the_network_need_tls(self) -> Self:
        if self.peers_listen is not None:
            if parse_listen(self.peers_listen) is None:
                raise ValueError("peers_listen must be ADDRESS:PORT (leave it unset otherwise)")
            if self.peers_tls_cert is None or self.peers_tls_ca is None:
                raise ValueError(
                    "peers_listen on the network needs TLS: set peers_tls_cert and peers_tls_ca"
                )
        return self

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """The HTTPS listener's (host, port), ``None`` when disabled."""
        return parse_listen(self.listen)

    @property
    def tls_cert_path(self) -> Path:
        return self.tls_cert or self.data_dir / "tls" / "cert.pem"

    @property
    def tls_key_path(self) -> Path:
        return self.tls_key or self.data_dir / "tls" / "key.pem"

    @property
    def socket_path(self) -> Path:
        """The API's unix socket (mode 0600: root or the daemon's user only)."""
        return self.data_dir / "bascule.sock"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "bascule.db"

    @property
    def haproxy_dir(self) -> Path:
        return self.data_dir / "haproxy"

    @property
    def request_log_path(self) -> Path:
        return self.data_dir / "logs" / "requests.log"

    @property
    def stunnel_dir(self) -> Path:
        return self.data_dir / "stunnel"

    @property
    def keepalived_dir(self) -> Path:
        return self.data_dir / "keepalived"

    @property
    def certificates_dir(self) -> Path:
        """The certificate store's files, as the engines read them (0700, files 0600)."""
        return self.data_dir / "certificates"

    @property
    def pages_dir(self) -> Path:
        """The page store's files (``<name>.html``), as HAProxy reads them."""
        return self.data_dir / "pages"


def parse_listen(value: str) -> tuple[str, int] | None:
    """``"127.0.0.1:8443"`` -> ``("127.0.0.1", 8443)``; ``"[::1]:8443"`` -> ``("::1", 8443)``;
    ``"none"`` -> ``None``. Raises ``ValueError`` with a readable message otherwise."""
    text = value.strip()
    if text.lower() == "none":
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"listen must be ADDRESS:PORT or none, not {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"listen needs an IP address (e.g. 127.0.0.1:8443), not {host!r}"
        ) from None
    return host, int(port_text)
