"""Configuration from the environment (``LABELLOOP_*``) and command-line flags."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from labelloop.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///./labelloop.db"


class Settings(BaseSettings):
    """Settings for every entry point. Factories take a ``Settings``; nothing is global."""

    model_config = SettingsConfigDict(env_prefix="LABELLOOP_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str | None = Field(default=None, repr=False)
    secret_key_file: Path = Path("./.labelloop_secret")
    host: str = "127.0.0.1"
    port: int = 8000
    echo_sql: bool = False
    #: Database connections each engine keeps open, and how many more it may open at
    #: busy moments (closed again when returned). Each ``labelloop serve`` process has
    #: two engines (writes and reads); mind PostgreSQL's ``max_connections``.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)

    # -- web limits (see docs/security.md) --------------------------------------------
    #: The largest JSON request body the API reads (bytes); larger ones get 413 before
    #: anything is parsed.
    max_json_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    #: The largest file upload (bytes), counted as the stream arrives; 413 beyond it.
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    #: Password checks (argon2) that may run at once per server process; further
    #: sign-ins wait for a slot (and give up with 429 after ``login_queue_seconds``).
    login_concurrency: int = Field(default=2, ge=1)
    login_queue_seconds: float = Field(default=10.0, gt=0)
    #: Sessions end this many hours after sign-in, and after ``session_idle_hours``
    #: without a request; logout and "sign out everywhere" end them at once.
    session_hours: float = Field(default=12.0, gt=0)
    session_idle_hours: float = Field(default=2.0, gt=0)
    #: Addresses (or networks, comma-separated) of reverse proxies whose
    #: ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed. Empty: none are.
    trusted_proxies: str = ""

    # -- the audit trail (see docs/security.md) -----------------------------------------
    #: The key of the trail's HMAC chain. Unset: the contents of ``trail_key_file`` when
    #: that is set (an error when it cannot be read), else a key derived from the secret
    #: key. Keep it outside the database.
    trail_key: str | None = Field(default=None, repr=False)
    trail_key_file: Path | None = None
    #: The append-only file that ``labelloop trail checkpoint`` (and the worker) append
    #: the trail's head to, and that ``labelloop trail verify`` checks against.
    trail_anchor_file: Path = Path("./labelloop-trail.anchors")
    #: How often the worker appends a checkpoint (minutes; 0 turns it off).
    trail_checkpoint_minutes: float = Field(default=60.0, ge=0)

    def ensure_secret_key(self) -> str:
        """The signing key: from the environment, else read from (or generated into)
        ``secret_key_file`` with mode 0600, so it is stable across restarts and never
        committed."""
        if self.secret_key:
            return self.secret_key
        path = self.secret_key_file
        if path.exists():
            key = path.read_text(encoding="utf-8").strip()
        else:
            key = secrets.token_urlsafe(48)
            path.write_text(key + "\n", encoding="utf-8")
            path.chmod(0o600)
        self.secret_key = key
        return key

    def trail_key_bytes(self) -> bytes:
        """The trail's HMAC key: ``trail_key``, else the contents of ``trail_key_file``
        (ConfigurationError when it is set but unreadable or empty), else
        HMAC-SHA256(secret key, "labelloop trail key v1"), so a deployment that keeps its
        secret key file outside the database has a trail key outside it too."""
        if self.trail_key:
            return self.trail_key.encode("utf-8")
        if self.trail_key_file is not None:
            # a missing file is an error, never a silent switch to another key
            try:
                key = self.trail_key_file.read_bytes().strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"LABELLOOP_TRAIL_KEY_FILE {self.trail_key_file}: {exc.strerror or exc}"
                ) from None
            if not key:
                raise ConfigurationError(f"LABELLOOP_TRAIL_KEY_FILE {self.trail_key_file} is empty")
            return key
        secret = self.ensure_secret_key().encode("utf-8")
        return hmac.new(secret, b"labelloop trail key v1", hashlib.sha256).digest()

    def proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """``trusted_proxies`` parsed (ValueError naming a bad entry)."""
        nets = []
        for entry in self.trusted_proxies.replace(";", ",").split(","):
            entry = entry.strip()
            if entry:
                try:
                    nets.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(
                        f"LABELLOOP_TRUSTED_PROXIES: {entry!r} is not an address or network"
                    ) from None
        return nets
