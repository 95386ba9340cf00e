"""Append to, verify, and query the audit trail.

Every service write calls :func:`append` inside the caller's transaction, so the change
and its event commit (or roll back) together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from labelloop.store.base import utcnow
from labelloop.trail.chain import GENESIS, event_hash, hashed_fields, jsonable
from labelloop.trail.models import Event, TrailHead

#: Statements on the head's table, built once: appends run on every write, and plain
#: SQL skips the ORM's per-statement work (the head is read back only by :func:`verify`,
#: which reloads it).
_HEAD_TABLE = cast(Table, TrailHead.__table__)
_HEAD = select(_HEAD_TABLE.c.seq, _HEAD_TABLE.c.hash).where(_HEAD_TABLE.c.id == 1)
_HEAD_FOR_UPDATE = _HEAD.with_for_update()
_SET_HEAD = (
    update(_HEAD_TABLE)
    .where(_HEAD_TABLE.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def _head(session: Session) -> tuple[int, str]:
    """The head's (seq, hash), locked on PostgreSQL; created on the first append."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    row = session.execute(_HEAD_FOR_UPDATE if postgresql else _HEAD).first()
    if row is None:
        session.execute(insert(_HEAD_TABLE).values(id=1, seq=0, hash=GENESIS))
        return 0, GENESIS
    return row.seq, row.hash


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
) -> Event:
    """Append one event to the chain within the current transaction."""
    head_seq, head_hash = _head(session)
    seq = head_seq + 1
    created_at = utcnow()
    before_j, after_j = jsonable(before), jsonable(after)
    ent = None if entity_id is None else str(entity_id)
    fields = hashed_fields(
        seq=seq,
        created_at=created_at,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=ent,
        project_id=project_id,
        before=before_j,
        after=after_j,
    )
    digest = event_hash(head_hash, fields)
    event = Event(
        seq=seq,
        created_at=created_at,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=ent,
        project_id=project_id,
        before=before_j,
        after=after_j,
        prev_hash=head_hash,
        hash=digest,
    )
    session.add(event)
    session.flush()
    session.execute(_SET_HEAD, {"new_seq": seq, "new_hash": digest})
    return event


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
