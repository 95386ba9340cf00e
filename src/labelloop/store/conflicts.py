"""Unique-constraint races: two requests that insert the same key at once.

The second insert fails with a unique violation (PostgreSQL waits for the first
transaction, then raises; SQLite serialises writers, so it sees the first one's row
before it decides). :func:`retry_on_unique` runs a find-or-create step in a SAVEPOINT
and, when it loses such a race, runs it once more: the second run finds the row the
winner committed and answers as a retry would (the idempotent answer).
:func:`is_unique_violation` lets the web and CLI layers map any race left over to a
409 instead of a server error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

T = TypeVar("T")

#: SQLSTATE of a unique violation (PostgreSQL).
UNIQUE_VIOLATION = "23505"
#: SQLSTATEs of transactions PostgreSQL aborted so another could go on (a deadlock, a
#: serialisation failure): the request may simply be sent again.
RETRYABLE = frozenset({"40P01", "40001"})


def is_unique_violation(exc: BaseException) -> bool:
    """Whether ``exc`` is a database's unique-constraint violation."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == UNIQUE_VIOLATION)
    return "UNIQUE constraint failed" in str(orig)


def is_concurrent_conflict(exc: BaseException) -> bool:
    """A unique violation, deadlock or serialisation failure: the request met a
    concurrent one, and answering 409 (try again) is right; anything else is a bug."""
    if is_unique_violation(exc):
        return True
    orig = getattr(exc, "orig", None)
    return isinstance(exc, DBAPIError) and getattr(orig, "sqlstate", None) in RETRYABLE


def retry_on_unique(session: Session, step: Callable[[], T]) -> T:
    """Run ``step`` in a SAVEPOINT; when it fails on a unique violation (a concurrent
    request inserted the same key first), roll the savepoint back and run it once more."""
    try:
        with session.begin_nested():
            return step()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
    with session.begin_nested():
        return step()
