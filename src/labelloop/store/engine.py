"""Engines and sessions. SQLite gets WAL, foreign keys and a busy timeout on connect;
every connection carries the audit trail's key (never sent to the database)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from labelloop.errors import ConfigurationError
from labelloop.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Key of the connection record's ``info`` entry holding the trail key (a
#: :class:`TrailKey`); read back with :func:`trail_key_of`.
TRAIL_KEY_INFO = "labelloop.trail_key"


class TrailKey:
    """The audit trail's HMAC key, resolved on first use and then kept.

    Resolving it may read a key file or create the secret key file
    (:meth:`Settings.trail_key_bytes`), so that happens only when the trail is written
    or verified, once per engine (under a lock: two first requests at once must not
    generate two secret keys), and its failures are :class:`ConfigurationError`.
    """

    def __init__(self, resolve: Callable[[], bytes]) -> None:
        self._resolve: Callable[[], bytes] | None = resolve
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def get(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    assert self._resolve is not None
                    try:
                        key = self._resolve()
                    except OSError as exc:
                        raise ConfigurationError(f"cannot read the trail key: {exc}") from exc
                    if not key:
                        raise ConfigurationError(
                            "the trail key is empty (LABELLOOP_TRAIL_KEY or LABELLOOP_TRAIL_KEY_FILE)"
                        )
                    self._key, self._resolve = key, None
        return self._key

    def __repr__(self) -> str:  # never show the key
        return "TrailKey(...)"


def trail_key_of(info: dict[Any, Any]) -> bytes:
    """The trail key from a connection's ``info`` (``session.connection().info``)."""
    holder = info.get(TRAIL_KEY_INFO)
    if not isinstance(holder, TrailKey):
        raise ConfigurationError(
            "this database connection has no trail key: make engines with "
            "labelloop.store.make_engine"
        )
    return holder.get()


def _trail_key_listener(holder: TrailKey) -> Callable[[Any, Any], None]:
    def put_key(_dbapi_connection: Any, record: Any) -> None:
        record.info[TRAIL_KEY_INFO] = holder

    return put_key


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
    url_or_settings: str | Settings,
    *,
    echo: bool = False,
    read_only: bool = False,
    trail_key: bytes | None = None,
) -> Engine:
    """Engine for a database URL; ``sqlite:`` URLs get the pragmas above.

    ``read_only`` engines (long reads such as dashboard refreshes) start SQLite
    transactions with a deferred ``BEGIN``: one consistent WAL snapshot and no write
    lock, so a long read does not hold up writers. They must not write.

    Every connection's record carries the trail key (``info[TRAIL_KEY_INFO]``, see
    :func:`trail_key_of`): ``trail_key`` if given, else the settings' key
    (:meth:`Settings.trail_key_bytes`; for a bare URL, ``Settings(database_url=url)``,
    i.e. the environment and the secret key file), resolved on first use.
    """
    pool: dict[str, Any] = {}
    settings: Settings | None
    if isinstance(url_or_settings, Settings):
        settings = url_or_settings
        url, echo = settings.database_url, settings.echo_sql or echo
        pool = {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow}
    else:
        url = url_or_settings
        settings = None if trail_key is not None else Settings(database_url=url)
    engine = _create(url, echo=echo, read_only=read_only, pool=pool)
    if trail_key is not None:
        key = trail_key
        holder = TrailKey(lambda: key)
    else:
        assert settings is not None
        holder = TrailKey(settings.trail_key_bytes)
    event.listen(engine, "connect", _trail_key_listener(holder))
    return engine


def _create(url: str, *, echo: bool, read_only: bool, pool: dict[str, Any]) -> Engine:
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
