"""Configuration from the environment (``LABELLOOP_*``) and command-line flags."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
