"""Shared test fixtures: the real files in ``../shared/fixtures`` and database sessions.

Database tests run on every backend in ``LABELLOOP_TEST_BACKENDS`` (default
``sqlite,postgresql``). Each test session migrates a fresh database once per backend
(a new PostgreSQL database, a new SQLite file); each test runs inside a transaction
with the service's work in a SAVEPOINT, rolled back at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from labelloop.store import make_engine, upgrade

# The trail key and anchor file of every engine and command the tests make, unless the
# environment names them: set here, before any Settings is read, so that no test
# derives the trail key from (or writes) a secret key file in the working directory,
# nor appends checkpoints (``labelloop demo`` does) to an anchor file there.
os.environ.setdefault("LABELLOOP_TRAIL_KEY", "test-trail-key-" + "t" * 32)
os.environ.setdefault(
    "LABELLOOP_TRAIL_ANCHOR_FILE",
    os.path.join(tempfile.mkdtemp(prefix="labelloop-test-"), "trail.anchors"),
)

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
IN_CI = os.environ.get("CI") == "true"
PG_ADMIN_URL = os.environ.get(
    "LABELLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = [
    b.strip()
    for b in os.environ.get("LABELLOOP_TEST_BACKENDS", "sqlite,postgresql").split(",")
    if b.strip()
]


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """Path to ``../shared/fixtures``; skipped when absent, a failure under CI=true."""
    if not SHARED_FIXTURES.is_dir():
        if IN_CI:
            pytest.fail(f"shared fixtures not found at {SHARED_FIXTURES} (required under CI=true)")
        pytest.skip(f"shared fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES


class _Postgres:
    """Creates and drops throw-away databases on the test server."""

    def __init__(self) -> None:
        self.admin: Engine | None = None
        self.created: list[str] = []

    def available(self) -> Engine:
        if self.admin is None:
            engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
            try:
                with engine.connect() as conn:
                    conn.execute(text("select 1"))
            except Exception as exc:
                msg = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc.__class__.__name__}"
                if IN_CI:
                    pytest.fail(msg + " (required under CI=true)")
                pytest.skip(msg)
            self.admin = engine
        return self.admin

    def create(self, template: str | None = None) -> str:
        admin = self.available()
        name = f"labelloop_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            clause = f" TEMPLATE {template}" if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        self.created.append(name)
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self.admin is None:
            return
        with self.admin.connect() as conn:
            for name in reversed(self.created):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def _postgres() -> Iterator[_Postgres]:
    pg = _Postgres()
    yield pg
    pg.drop_all()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def template_url(
    backend: str, _postgres: _Postgres, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A database migrated to head once per backend per test session; never used
    directly, only copied (PostgreSQL cannot copy a database that has connections)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'template.db'}"
    elif backend == "postgresql":
        url = _postgres.create()
    else:
        raise ValueError(f"unknown test backend {backend!r}")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def _copy_database(backend: str, template: str, pg: _Postgres, directory: Path) -> str:
    if backend == "sqlite":
        src = make_url(template).database
        assert src is not None
        dst = directory / f"labelloop-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(src, dst)
        return f"sqlite:///{dst}"
    return pg.create(template=make_url(template).database)


@pytest.fixture(scope="session")
def migrated_url(
    backend: str, template_url: str, _postgres: _Postgres, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The migrated database that SAVEPOINT-isolated tests share."""
    return _copy_database(backend, template_url, _postgres, tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="session")
def engine(migrated_url: str) -> Iterator[Engine]:
    eng = make_engine(migrated_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test (SAVEPOINT isolation)."""
    connection = engine.connect()
    outer = connection.begin()
    db = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield db
    finally:
        db.close()
        if outer.is_active:
            outer.rollback()
        connection.close()


@pytest.fixture
def fresh_database_url(
    backend: str, template_url: str, _postgres: _Postgres, tmp_path: Path
) -> str:
    """A new, migrated, empty database for tests whose code commits (CLI, imports)."""
    return _copy_database(backend, template_url, _postgres, tmp_path)


@pytest.fixture
def factories(session: Session) -> Iterator[ModuleType]:
    """The :mod:`tests.factories` module, bound to this test's ``session``."""
    from tests import factories as _factories

    _factories.bind(session)
    try:
        yield _factories
    finally:
        _factories.bind(None)
