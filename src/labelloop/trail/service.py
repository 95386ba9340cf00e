"""Append to, verify, and query the audit trail.

Every service write calls :func:`append` inside the caller's transaction, so the change
and its event commit (or roll back) together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, Text, bindparam, func, insert, literal, literal_column, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from labelloop.store.base import utcnow
from labelloop.trail.chain import (
    GENESIS,
    canonical_up_to_seq,
    event_hash,
    hashed_fields,
    jsonable,
)
from labelloop.trail.models import Event, TrailHead

#: Statements built once: appends run on every write, and plain SQL skips the ORM's
#: unit of work (the rows are read back only by :func:`verify`, which reloads them).
_EVENTS = cast(Table, Event.__table__)
_HEAD_TABLE = cast(Table, TrailHead.__table__)
_HEAD = select(_HEAD_TABLE.c.seq, _HEAD_TABLE.c.hash).where(_HEAD_TABLE.c.id == 1)
_SET_HEAD = (
    update(_HEAD_TABLE)
    .where(_HEAD_TABLE.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
_INSERT_EVENT = insert(_EVENTS)
#: The event columns given by the caller (the rest are chained: seq, prev_hash, hash).
_GIVEN = (
    "created_at",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "project_id",
    "before",
    "after",
)


def _append_in_one_statement() -> Any:
    """PostgreSQL: lock the head, insert the event and move the head in one statement.

    The hash is computed by the database (``sha256``, PostgreSQL 11+) from the head's
    hash, the event's canonical JSON up to its sequence number (``:body``, see
    :func:`~labelloop.trail.chain.canonical_up_to_seq`) and the sequence number, so the
    head's row lock is taken and released around one round trip and the commit, not
    around several statements and the Python work between them.

    The final ``UPDATE`` must not filter on the head's columns: it scans the head as of
    the statement's snapshot, which under a concurrent writer is older than the version
    the ``FOR UPDATE`` waited for; PostgreSQL moves the update to the newest version.
    """
    head = _HEAD.with_for_update().cte("head")
    seq = head.c.seq + 1
    text = head.c.hash + bindparam("body", type_=Text()) + sql_cast(seq, Text()) + literal("}")
    digest = func.encode(func.sha256(func.convert_to(text, literal("UTF8"))), literal("hex"))
    values = [bindparam(name, type_=_EVENTS.c[name].type) for name in _GIVEN]
    event = (
        insert(_EVENTS)
        .from_select(
            ["seq", *_GIVEN, "prev_hash", "hash"], select(seq, *values, head.c.hash, digest)
        )
        .returning(_EVENTS.c.seq, _EVENTS.c.hash, literal_column("1").label("head_id"))
        .cte("event")
    )
    return (
        update(_HEAD_TABLE)
        .where(_HEAD_TABLE.c.id == event.c.head_id)
        .values(seq=event.c.seq, hash=event.c.hash)
        .returning(_HEAD_TABLE.c.seq)
    )


_APPEND_PG = _append_in_one_statement()


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | int | None = None,
    project_id: int | None = None,
    before: Any = None,
    after: Any = None,
) -> None:
    """Append one event to the chain within the current transaction.

    Concurrent writers are ordered by the head row: locked with ``FOR UPDATE`` on
    PostgreSQL (one statement, see :func:`_append_in_one_statement`); SQLite writers
    already hold the database's write lock.
    """
    row: dict[str, Any] = {
        "created_at": utcnow(),
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": None if entity_id is None else str(entity_id),
        "project_id": project_id,
        "before": jsonable(before),
        "after": jsonable(after),
    }
    fields = hashed_fields(seq=0, **row)
    del fields["seq"]
    if session.get_bind().dialect.name == "postgresql":
        body = canonical_up_to_seq(fields)
        if session.execute(_APPEND_PG, {**row, "body": body}).first() is None:
            _create_head(session)
            session.execute(_APPEND_PG, {**row, "body": body})
        return
    head = session.execute(_HEAD).first()
    if head is None:
        _create_head(session)
        head_seq, head_hash = 0, GENESIS
    else:
        head_seq, head_hash = head.seq, head.hash
    seq = head_seq + 1
    digest = event_hash(head_hash, fields | {"seq": seq})
    session.execute(_INSERT_EVENT, {**row, "seq": seq, "prev_hash": head_hash, "hash": digest})
    session.execute(_SET_HEAD, {"new_seq": seq, "new_hash": digest})


def _create_head(session: Session) -> None:
    """The head row, created by the first append (a concurrent first append fails on
    its primary key and rolls back)."""
    session.execute(insert(_HEAD_TABLE).values(id=1, seq=0, hash=GENESIS))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    problems: list[str]


def verify(session: Session, *, batch: int = 5000) -> VerifyResult:
    """Recompute every hash in sequence order and name each event that breaks the chain.

    Detects an edited event (its hash no longer matches its content), a deleted event
    (a gap in sequence numbers, or the head pointing past the last event) and
    reordered events (a ``prev_hash`` that is not the previous event's hash).
    """
    problems: list[str] = []
    prev_hash, prev_seq, checked = GENESIS, 0, 0
    rows = session.execute(select(Event).order_by(Event.seq).execution_options(yield_per=batch))
    for (event,) in rows:
        checked += 1
        if event.seq != prev_seq + 1:
            missing = (
                f"{prev_seq + 1}"
                if event.seq == prev_seq + 2
                else f"{prev_seq + 1}..{event.seq - 1}"
            )
            problems.append(f"event(s) {missing} missing before event {event.seq} (deleted)")
        fields = hashed_fields(
            seq=event.seq,
            created_at=event.created_at,
            actor=event.actor,
            action=event.action,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            project_id=event.project_id,
            before=event.before,
            after=event.after,
        )
        if event.prev_hash != prev_hash and event.seq == prev_seq + 1:
            problems.append(
                f"event {event.seq}: previous-hash link broken (events reordered or replaced)"
            )
        if event_hash(event.prev_hash, fields) != event.hash:
            problems.append(f"event {event.seq}: content does not match its hash (edited)")
        prev_hash, prev_seq = event.hash, event.seq
    head = session.get(TrailHead, 1, populate_existing=True)
    if head is not None and (head.seq != prev_seq or head.hash != prev_hash):
        problems.append(
            f"trail head says the last event is {head.seq}, but the last stored event is "
            f"{prev_seq} (newest events deleted or head edited)"
        )
    return VerifyResult(ok=not problems, checked=checked, problems=problems)


def query(
    session: Session,
    *,
    project_id: int | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 100,
    newest_first: bool = True,
) -> Sequence[Event]:
    """Events matching every given filter."""
    stmt = select(Event)
    if project_id is not None:
        stmt = stmt.where(Event.project_id == project_id)
    if entity_type is not None:
        stmt = stmt.where(Event.entity_type == entity_type)
    if entity_id is not None:
        stmt = stmt.where(Event.entity_id == entity_id)
    if actor is not None:
        stmt = stmt.where(Event.actor == actor)
    if action is not None:
        stmt = stmt.where(Event.action.like(action.replace("*", "%")))
    if since is not None:
        stmt = stmt.where(Event.created_at >= since)
    if until is not None:
        stmt = stmt.where(Event.created_at < until)
    stmt = stmt.order_by(Event.seq.desc() if newest_first else Event.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.scalars(stmt).all()


def iter_all(session: Session) -> Iterator[Event]:
    yield from session.scalars(select(Event).order_by(Event.seq).execution_options(yield_per=5000))
