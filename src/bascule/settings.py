"""Settings of the daemon and the CLI (pydantic-settings, ``BASCULE_*`` environment variables).

Passed in to whoever needs them; never imported by model, reconcile or engines.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("/var/lib/bascule")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASCULE_", extra="ignore")

    data_dir: Path = DEFAULT_DATA_DIR
    haproxy_binary: str = "haproxy"
    # How long SIGTERM lets connections finish before HAProxy is stopped for good.
    shutdown_grace: float = 10.0
    # How often the daemon re-reads the engines and repairs drift.
    reconcile_interval: float = 5.0
    log_level: str = "INFO"

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
