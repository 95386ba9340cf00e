"""The store: SQLite pragmas, migrations in step with the models, both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

import labelloop.models  # noqa: F401
from labelloop.settings import Settings
from labelloop.store import Base, make_engine, upgrade
from labelloop.store.migrate import current


def test_sqlite_pragmas(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
    engine.dispose()


def test_settings_reads_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LABELLOOP_DATABASE_URL", "sqlite:///elsewhere.db")
    assert Settings().database_url == "sqlite:///elsewhere.db"
    monkeypatch.delenv("LABELLOOP_DATABASE_URL")
    assert Settings().database_url == "sqlite:///./labelloop.db"


def test_secret_key_generated_once_and_private(tmp_path) -> None:
    settings = Settings(secret_key_file=tmp_path / "secret")
    key = settings.ensure_secret_key()
    assert len(key) >= 32
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    assert Settings(secret_key_file=tmp_path / "secret").ensure_secret_key() == key


def test_migrations_match_models(engine: Engine) -> None:
    """Autogenerate finds nothing to do: the migrations create exactly the models."""
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata
        )
    assert diff == []


def test_upgrade_is_idempotent(fresh_database_url: str) -> None:
    engine = make_engine(fresh_database_url)
    head = current(engine)
    upgrade(engine)
    assert current(engine) == head is not None
    engine.dispose()


def test_foreign_keys_enforced(session) -> None:
    from labelloop.projects.models import Item

    session.add(Item(project_id=999_999, external_id="x", payload={}))
    import pytest
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        session.flush()
