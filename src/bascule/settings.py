"""Settings of the daemon and the CLI (pydantic-settings, ``BASCULE_*`` environment variables).

Passed in to whoever needs them; never imported by model, reconcile or engines.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("/var/lib/bascule")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASCULE_", extra="ignore")

    data_dir: Path = DEFAULT_DATA_DIR
    haproxy_binary: str = "haproxy"
    # How long `bascule stop --data-plane` lets connections finish before HAProxy is stopped
    # for good (SIGTERM stops the daemon only: the data plane runs on).
    shutdown_grace: float = 10.0
    # How often the daemon re-reads the engines and repairs drift.
    reconcile_interval: float = 5.0
    # How often the statistics sampler reads the counters (seconds, > 0; graphs use 10 s steps).
    stats_interval: float = Field(default=10.0, gt=0)
    log_level: str = "INFO"
    # Log files (haproxy/haproxy.log; the daemon's own when its stderr is a file) are rotated
    # past this size, keeping this many older copies (daemon/logfiles.py).
    log_file_max_bytes: int = Field(default=10 * 1024 * 1024, ge=64 * 1024)
    log_file_backups: int = Field(default=3, ge=0, le=100)
    # The HTTPS management listener (API + WUI): "ADDRESS:PORT" ("[::1]:8443" for IPv6), or
    # "none" for the unix socket only. Beyond loopback only when configured.
    listen: str = "127.0.0.1:8443"
    # Its certificate and key (PEM); generated self-signed at first start when both are missing.
    tls_cert: Path | None = None  # default data_dir/tls/cert.pem
    tls_key: Path | None = None  # default data_dir/tls/key.pem
    # WUI sessions end after this many seconds without activity.
    session_idle_timeout: float = Field(default=900.0, gt=0)
    # This many failed logins for one name within lockout_seconds lock it for lockout_seconds.
    lockout_attempts: int = Field(default=5, ge=1)
    lockout_seconds: float = Field(default=300.0, gt=0)
    # The first start's admin password (BASCULE_ADMIN_PASSWORD); random and printed if unset.
    admin_password: SecretStr | None = None

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value.strip()

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
