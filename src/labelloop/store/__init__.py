"""Engine and session factory, the declarative base, migrations, SQLite pragmas."""

from labelloop.store.base import Base, TimestampMixin, utcnow
from labelloop.store.engine import make_engine, make_session_factory, session_scope
from labelloop.store.migrate import upgrade

__all__ = [
    "Base",
    "TimestampMixin",
    "make_engine",
    "make_session_factory",
    "session_scope",
    "upgrade",
    "utcnow",
]
