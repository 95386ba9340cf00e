"""The store: SQLite pragmas, migrations in step with the models, both backends."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

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


def _sqlite_table(tmp_path: Path, **kwargs: Any) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}", **kwargs)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (who TEXT)"))
    return engine


def test_sqlite_writers_take_turns_in_process(tmp_path: Path) -> None:
    """A second writer of the same engine waits for the first to commit (on the
    engine's own queue, not SQLite's busy handler) and then goes ahead."""
    engine = _sqlite_table(tmp_path)
    order: list[str] = []

    def second() -> None:
        with engine.begin() as conn:
            order.append("second began")
            conn.execute(text("INSERT INTO t VALUES ('second')"))

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES ('first')"))
        worker = threading.Thread(target=second)
        worker.start()
        time.sleep(0.2)
        order.append("first commits")
    worker.join(timeout=10)
    assert order == ["first commits", "second began"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t ORDER BY rowid")).scalars().all() == [
            "first",
            "second",
        ]
    engine.dispose()


def test_sqlite_writer_queue_reopens_after_rollback_and_broken_connections(
    tmp_path: Path,
) -> None:
    engine = _sqlite_table(tmp_path)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES ('rolled back')"))
        raise RuntimeError("boom")
    conn = engine.connect()
    conn.begin()
    conn.execute(text("INSERT INTO t VALUES ('abandoned')"))
    conn.invalidate()  # a broken connection: its transaction never ended
    done = threading.Event()

    def writer() -> None:
        with engine.begin() as c:
            c.execute(text("INSERT INTO t VALUES ('after')"))
        done.set()

    threading.Thread(target=writer).start()
    assert done.wait(timeout=10), "the writer queue stayed closed"
    with engine.connect() as c:
        assert c.execute(text("SELECT who FROM t")).scalars().all() == ["after"]
    engine.dispose()


def test_sqlite_read_only_engine_reads_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    writer = _sqlite_table(tmp_path)
    reader = make_engine(f"sqlite:///{tmp_path / 'w.db'}", read_only=True)
    with writer.begin() as w:
        w.execute(text("INSERT INTO t VALUES ('pending')"))
        started = time.perf_counter()
        with reader.connect() as r:
            assert r.execute(text("SELECT count(*) FROM t")).scalar() == 0  # its snapshot
        assert time.perf_counter() - started < 5
    with pytest.raises(OperationalError, match="readonly"), reader.begin() as r:
        r.execute(text("INSERT INTO t VALUES ('through the reader')"))
    writer.dispose()
    reader.dispose()
