"""Engines and sessions. SQLite gets WAL, foreign keys and a busy timeout on connect."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from labelloop.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 driver opens transactions lazily; turn that off so BEGIN is ours
    # (SQLAlchemy emits it) and pragmas run outside a transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_HELD = "labelloop.sqlite_writer"


class _SQLiteWriters:
    """Transactions of one SQLite engine take the database's write lock one at a time,
    in arrival order.

    Every transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock at BEGIN,
    so two writers queue instead of failing with "database is locked" when a reader
    upgrades. Left to SQLite, threads that find the lock taken poll for it with growing
    sleeps (1 ms up to 100 ms), so under load a newcomer keeps overtaking a thread that
    has waited long and the slowest requests wait for seconds. Here the threads of one
    process first queue on a lock of their own (woken as soon as it is free); other
    processes still meet at SQLite's busy timeout.
    """

    def __init__(self, timeout: float) -> None:
        self._lock = threading.Lock()
        self._timeout = timeout

    def begin(self, conn: Any) -> None:
        if self._lock.acquire(timeout=self._timeout):
            conn.info[_HELD] = self._lock  # else SQLite's own busy timeout decides
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release(conn.info)
            raise

    def end(self, conn: Any) -> None:
        _release(conn.info)

    def returned(self, _dbapi_connection: Any, record: Any, *_rest: Any) -> None:
        # a connection checked in or invalidated without COMMIT/ROLLBACK (a broken
        # connection) must not keep the queue closed
        if record is not None:
            _release(record.info)


def _release(info: dict[str, Any]) -> None:
    lock = info.pop(_HELD, None)
    if lock is not None:
        lock.release()


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    # a write through a read-only engine fails at once instead of taking the write lock
    dbapi_connection.execute("PRAGMA query_only=ON")


def _sqlite_deferred_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def make_engine(
    url_or_settings: str | Settings, *, echo: bool = False, read_only: bool = False
) -> Engine:
    """Engine for a database URL; ``sqlite:`` URLs get the pragmas above.

    ``read_only`` engines (long reads such as dashboard refreshes) start SQLite
    transactions with a deferred ``BEGIN``: one consistent WAL snapshot and no write
    lock, so a long read does not hold up writers. They must not write.
    """
    pool: dict[str, Any] = {}
    if isinstance(url_or_settings, Settings):
        url, echo = url_or_settings.database_url, url_or_settings.echo_sql or echo
        pool = {
            "pool_size": url_or_settings.db_pool_size,
            "max_overflow": url_or_settings.db_max_overflow,
        }
    else:
        url = url_or_settings
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            pool = {}  # one shared connection (SingletonThreadPool): no pool sizes
        engine = create_engine(
            url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **pool
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if read_only:
            event.listen(engine, "connect", _sqlite_query_only)
            event.listen(engine, "begin", _sqlite_deferred_begin)
            return engine
        writers = _SQLiteWriters(SQLITE_BUSY_TIMEOUT_MS / 1000)
        event.listen(engine, "begin", writers.begin)
        event.listen(engine, "commit", writers.end)
        event.listen(engine, "rollback", writers.end)
        event.listen(engine, "checkin", writers.returned)
        event.listen(engine, "invalidate", writers.returned)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, echo=echo, pool_pre_ping=True, **pool)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
