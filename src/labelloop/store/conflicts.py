"""Unique-constraint races: two requests that insert the same key at once.

The second insert fails with a unique violation (PostgreSQL waits for the first
transaction, then raises; SQLite serialises writers, so it sees the first one's row
before it decides). :func:`retry_on_unique` runs a find-or-create step in a SAVEPOINT
and, when it loses such a race, runs it once more: the second run finds the row the
winner committed and answers as a retry would (the idempotent answer).
:func:`stored_row` creates a row that is read as defaults until first written (a
project's settings) without that race: ``INSERT ... ON CONFLICT DO NOTHING``, then a
locked read. :func:`is_unique_violation` lets the web and CLI layers map any race left
over to a 409 instead of a server error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from labelloop.errors import Conflict

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


def insert_missing(session: Session, model: type[Any], values: dict[str, Any]) -> None:
    """Insert one row unless its key is taken (``INSERT ... ON CONFLICT DO NOTHING``,
    PostgreSQL and SQLite); columns left out get their defaults. A row a concurrent
    transaction inserted first is left alone: PostgreSQL waits for that transaction and
    then does nothing (or inserts, when it rolled back); SQLite's writers never overlap."""
    insert: Any = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(model).values(values).on_conflict_do_nothing())


def stored_row(session: Session, model: type[T], key: dict[str, Any]) -> T:
    """The row of ``model`` whose primary key is ``key`` (attribute names to values),
    inserted with its column defaults when there is none yet (:func:`insert_missing`),
    read afresh and locked ``FOR UPDATE`` (PostgreSQL) for the rest of the transaction:
    two first writers at once both get the one row, one after the other, never a unique
    violation."""
    insert_missing(session, model, key)
    row = session.get(model, key, with_for_update=True, populate_existing=True)
    if row is None:  # deleted by a concurrent transaction (its project went)
        raise Conflict(f"{model.__name__} {key} was deleted by a concurrent change")
    return row
