"""Append to, verify, checkpoint and query the audit trail.

Every service write calls :func:`append` inside the caller's transaction, so the change
and its event commit (or roll back) together. Hashes are keyed with the trail key
(:mod:`labelloop.trail.chain`), which the engine carries on each connection
(:func:`labelloop.store.engine.trail_key_of`) and which never goes to the database;
:func:`checkpoint` copies the head out of the database (:mod:`labelloop.trail.anchors`)
and :func:`verify` checks the chain against those copies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from labelloop.errors import TrailBroken
from labelloop.store.base import utcnow
from labelloop.store.engine import trail_key_of
from labelloop.trail.anchors import (
    Anchor,
    append_anchor,
    check_anchors,
    database_id,
    latest,
    make_anchor,
)
from labelloop.trail.chain import (
    GENESIS,
    canonical_up_to_seq,
    hashed_fields,
    jsonable,
    key_id,
    keyed_hash,
    keyed_hash_of,
    legacy_hash,
)
from labelloop.trail.models import Event, TrailHead

#: Statements built once: appends run on every write, and plain SQL skips the ORM's
#: unit of work (the rows are read back only by :func:`verify`, which reloads them).
_EVENTS = cast(Table, Event.__table__)
_HEAD_TABLE = cast(Table, TrailHead.__table__)
_HEAD = select(_HEAD_TABLE.c.seq, _HEAD_TABLE.c.hash).where(_HEAD_TABLE.c.id == 1)
_LOCK_HEAD = _HEAD.with_for_update()
_SET_HEAD = (
    update(_HEAD_TABLE)
    .where(_HEAD_TABLE.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
_INSERT_EVENT = insert(_EVENTS)
_CREATE_HEAD = insert(_HEAD_TABLE).values(id=1, seq=0, hash=GENESIS)
#: PostgreSQL: a concurrent first append waits for this one's head row, then finds it.
_CREATE_HEAD_PG = pg_insert(_HEAD_TABLE).values(id=1, seq=0, hash=GENESIS).on_conflict_do_nothing()
#: The event columns given by the caller (the rest are chained: seq, prev_hash, hash, key_id).
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
_STORED = (*_GIVEN, "seq", "prev_hash", "hash", "key_id")
#: The sequence number an anchor of an empty trail names (its hash is GENESIS).
GENESIS_SEQ = 0


def _insert_and_move_head() -> Any:
    """PostgreSQL: insert the event and move the (already locked) head in one statement.

    ``WITH event AS (INSERT INTO events ... RETURNING seq, hash, 1 AS head_id) UPDATE
    trail_head SET seq = event.seq, hash = event.hash FROM event WHERE trail_head.id =
    event.head_id``: one round trip after the head's lock, so the lock is held for two
    round trips and the commit.
    """
    values = {name: bindparam(f"e_{name}", type_=_EVENTS.c[name].type) for name in _STORED}
    event = (
        insert(_EVENTS)
        .values(values)
        .returning(_EVENTS.c.seq, _EVENTS.c.hash, literal_column("1").label("head_id"))
        .cte("event")
    )
    return (
        update(_HEAD_TABLE)
        .where(_HEAD_TABLE.c.id == event.c.head_id)
        .values(seq=event.c.seq, hash=event.c.hash)
    )


_APPEND_PG = _insert_and_move_head()


def _trail_key(session: Session) -> bytes:
    """The trail key of the session's connection (ConfigurationError without one)."""
    return trail_key_of(session.connection().info)


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

    Concurrent writers are ordered by the head row: locked with ``SELECT ... FOR
    UPDATE`` on PostgreSQL; SQLite writers already hold the database's write lock.
    The hash is an HMAC computed here, in Python, so the key never reaches the
    database (nor its statement log).
    """
    key = _trail_key(session)
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
    # everything but the head's part is computed before the head is locked
    fields = hashed_fields(seq=0, **row)
    del fields["seq"]
    body = canonical_up_to_seq(fields)
    row["key_id"] = key_id(key)
    postgres = session.get_bind().dialect.name == "postgresql"
    head_seq, head_hash = _lock_head(session, postgres=postgres)
    seq = head_seq + 1
    digest = keyed_hash_of(key, head_hash, f"{body}{seq}}}")
    row |= {"seq": seq, "prev_hash": head_hash, "hash": digest}
    if postgres:
        session.execute(_APPEND_PG, {f"e_{name}": value for name, value in row.items()})
    else:
        session.execute(_INSERT_EVENT, row)
        session.execute(_SET_HEAD, {"new_seq": seq, "new_hash": digest})


def _lock_head(session: Session, *, postgres: bool) -> tuple[int, str]:
    """The head's sequence number and hash, locked until the transaction ends; the
    first append creates the head row."""
    head = session.execute(_LOCK_HEAD if postgres else _HEAD).first()
    if head is not None:
        return head.seq, head.hash
    if not postgres:  # writers are serialised: nobody else creates it meanwhile
        session.execute(_CREATE_HEAD)
        return 0, GENESIS
    session.execute(_CREATE_HEAD_PG)
    head = session.execute(_LOCK_HEAD).one()
    return head.seq, head.hash


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found. ``ok`` means no problem; ``warnings`` say what the
    check could not cover (no anchor yet, events chained before the trail was keyed)."""

    ok: bool
    checked: int
    problems: list[str]
    #: Events chained before the trail was keyed (plain SHA-256, ``key_id`` NULL).
    legacy: int = 0
    #: The last stored event's sequence number (0 for an empty trail).
    last_seq: int = 0
    #: The anchor file checked (None: anchors were not checked).
    anchor_file: Path | None = None
    #: This database's anchors that the chain matches.
    anchors: list[Anchor] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def latest_anchor(self) -> Anchor | None:
        """The matched anchor of the highest sequence number."""
        return latest(self.anchors)


def _session_database(session: Session) -> str:
    return database_id(session.get_bind().engine.url)


@dataclass
class _Walk:
    """What one pass over the events in sequence order found."""

    problems: list[str] = field(default_factory=list)
    checked: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS
    legacy: int = 0
    last_legacy: int = 0
    #: hash of each anchored seq met on the way
    seen: dict[int, str] = field(default_factory=lambda: {GENESIS_SEQ: GENESIS})


def _walk(session: Session, key: bytes, wanted: set[int], batch: int) -> _Walk:
    """Recompute every hash in sequence order: gaps, broken links, edited events,
    unkeyed events after keyed ones, events of another key; keep the hashes at
    ``wanted`` sequence numbers."""
    this_key = key_id(key)
    w = _Walk()
    other_keys: dict[str, tuple[int, int, int]] = {}  # key id -> first, last, count
    last_keyed: int | None = None
    rows = session.execute(select(Event).order_by(Event.seq).execution_options(yield_per=batch))
    for (event,) in rows:
        w.checked += 1
        if event.seq != w.last_seq + 1:
            gap = w.last_seq + 1, event.seq - 1
            missing = f"{gap[0]}" if gap[0] == gap[1] else f"{gap[0]}..{gap[1]}"
            w.problems.append(f"event(s) {missing} missing before event {event.seq} (deleted)")
        elif event.prev_hash != w.last_hash:
            w.problems.append(
                f"event {event.seq}: previous-hash link broken (events reordered or replaced)"
            )
        fields = _fields_of(event)
        expected: str | None = None
        if event.key_id is None:
            w.legacy, w.last_legacy = w.legacy + 1, event.seq
            if last_keyed is not None:
                w.problems.append(
                    f"event {event.seq}: unkeyed event after keyed event {last_keyed} (rewritten)"
                )
            expected = legacy_hash(event.prev_hash, fields)
        elif event.key_id == this_key:
            last_keyed, expected = event.seq, keyed_hash(key, event.prev_hash, fields)
        else:
            last_keyed = event.seq
            first, _, count = other_keys.get(event.key_id, (event.seq, 0, 0))
            other_keys[event.key_id] = (first, event.seq, count + 1)
        if expected is not None and expected != event.hash:
            w.problems.append(f"event {event.seq}: content does not match its hash (edited)")
        if event.seq in wanted:
            w.seen[event.seq] = event.hash
        w.last_hash, w.last_seq = event.hash, event.seq
    for other, (first, last, count) in other_keys.items():
        span = f"event {first}" if count == 1 else f"{count} events from {first} to {last}"
        w.problems.append(
            f"{span} chained with another key (key id {other}, this key's id is "
            f"{this_key}): the trail key changed or was lost, so they cannot be checked"
        )
    return w


def _fields_of(event: Event) -> dict[str, Any]:
    return hashed_fields(
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


def _against_anchors(
    w: _Walk, anchors: list[Anchor]
) -> tuple[list[Anchor], list[Anchor], list[str]]:
    """(anchors the chain matches, anchors it contradicts, the problems)."""
    matched: list[Anchor] = []
    broken: list[Anchor] = []
    problems: list[str] = []
    for anchor in anchors:
        where = f"anchor line {anchor.line}"
        if anchor.seq > w.last_seq:
            problems.append(
                f"{where}: event {anchor.seq} is anchored, but the chain ends at event "
                f"{w.last_seq} (events deleted)"
            )
        elif anchor.seq not in w.seen:
            problems.append(f"{where}: anchored event {anchor.seq} is missing (deleted)")
        elif w.seen[anchor.seq] != anchor.hash:
            problems.append(
                f"{where}: event {anchor.seq} does not have the anchored hash (rewritten)"
            )
        else:
            matched.append(anchor)
            continue
        broken.append(anchor)
    return matched, broken, problems


def verify(
    session: Session,
    *,
    batch: int = 5000,
    anchor_file: Path | None = None,
    database: str | None = None,
) -> VerifyResult:
    """Recompute every hash in sequence order and name each event that breaks the chain;
    with ``anchor_file``, also check this database's anchors in it.

    Detects an edited event (its hash no longer matches its content: without the key
    nobody can recompute a matching one), a deleted event (a gap in sequence numbers,
    or the head pointing past the last event), reordered events (a ``prev_hash`` that
    is not the previous event's hash), an unkeyed event after a keyed one (rewritten
    as a legacy event), events chained with another key, and, against the anchors,
    a chain shorter than an anchored event (events deleted, even with the head moved
    back), another hash at an anchored event (rewritten), and legacy events no anchor
    covers (a whole chain rewritten in the public legacy form looks just like them).
    ``database`` names this database in the anchor file (default: from the session's
    URL, see :func:`~labelloop.trail.anchors.database_id`).
    """
    key = _trail_key(session)
    mine: list[Anchor] = []
    anchor_problems: list[str] = []
    if anchor_file is not None:
        found = check_anchors(anchor_file, key=key, database=database or _session_database(session))
        mine, anchor_problems = found.anchors, found.problems
    w = _walk(session, key, {a.seq for a in mine}, batch)
    problems = w.problems
    head = session.get(TrailHead, 1, populate_existing=True)
    if head is not None and (head.seq != w.last_seq or head.hash != w.last_hash):
        problems.append(
            f"trail head says the last event is {head.seq}, but the last stored event is "
            f"{w.last_seq} (newest events deleted or head edited)"
        )
    matched, broken, against = _against_anchors(w, mine)
    problems += against
    hint = _replaced_database_hint(session, broken, anchor_file)
    if hint:
        problems.append(hint)
    problems.extend(anchor_problems)
    warnings = _uncovered(w, matched, anchor_file, problems, bool(mine))
    return VerifyResult(
        ok=not problems,
        checked=w.checked,
        problems=problems,
        legacy=w.legacy,
        last_seq=w.last_seq,
        anchor_file=anchor_file,
        anchors=matched,
        warnings=warnings,
    )


def _uncovered(
    w: _Walk, matched: list[Anchor], anchor_file: Path | None, problems: list[str], any_: bool
) -> list[str]:
    """What no anchor covers: a warning when there is no anchor at all; legacy events
    no anchor covers are a problem when anchors were checked (appended to
    ``problems``), else a warning."""
    warnings: list[str] = []
    if anchor_file is not None and not any_:
        warnings.append(
            f"no anchor for this database in {anchor_file} yet: deleting the newest events "
            "(or all of them) would go unnoticed; run `labelloop trail checkpoint`"
        )
    covered = max((a.seq for a in matched), default=0)
    if w.legacy and covered < w.last_legacy:
        unpinned = (
            f"{w.legacy} event(s), up to event {w.last_legacy}, were chained before the "
            "trail was keyed (plain SHA-256) and no anchor covers them: whoever can write "
            "to the database could have rewritten them"
        )
        if anchor_file is None:
            warnings.append(unpinned)
        else:
            problems.append(
                unpinned + "; if this database was just upgraded, pin them with "
                "`labelloop trail checkpoint` (`labelloop db upgrade` does so)"
            )
    return warnings


_HEAD_AND_LAST = select(
    _HEAD_TABLE.c.seq,
    _HEAD_TABLE.c.hash,
    select(_EVENTS.c.hash)
    .where(_EVENTS.c.seq == _HEAD_TABLE.c.seq)
    .scalar_subquery()
    .label("event_hash"),
    select(func.max(_EVENTS.c.seq)).scalar_subquery().label("last_seq"),
).where(_HEAD_TABLE.c.id == 1)


def checkpoint(
    session: Session,
    *,
    anchor_file: Path,
    database: str | None = None,
    now: datetime | None = None,
) -> Anchor:
    """Append the trail's head to ``anchor_file`` (see :mod:`labelloop.trail.anchors`).

    Reads the head and the stored events in one statement (one snapshot) and refuses
    (TrailBroken) when they disagree, rather than anchor a head that does not match
    the events; the full check is :func:`verify`'s. Cheap: no chain walk.
    """
    key = _trail_key(session)
    database = database or _session_database(session)
    row = session.execute(_HEAD_AND_LAST).first()
    if row is None:
        last = session.scalar(select(func.max(_EVENTS.c.seq)))
        if last is not None:
            raise TrailBroken(
                f"the trail head is missing but events go up to {last}; not anchoring: "
                "run `labelloop trail verify`"
            )
        seq, digest = GENESIS_SEQ, GENESIS
    else:
        seq, digest = row.seq, row.hash
        stored = row.event_hash if row.seq else GENESIS
        if (row.last_seq or 0) != row.seq or stored != row.hash:
            raise TrailBroken(
                f"the trail head (event {row.seq}) does not match the stored events (last "
                f"{row.last_seq or 0}); not anchoring: run `labelloop trail verify`"
            )
    anchor = make_anchor(key, database=database, seq=seq, hash=digest, time=now or utcnow())
    append_anchor(anchor_file, anchor)
    return anchor


def _replaced_database_hint(
    session: Session, broken: list[Anchor], anchor_file: Path | None
) -> str | None:
    """When every anchor the chain contradicts is older than the trail's first event,
    the likeliest story is a new database created where an old one was (a deleted demo
    database, a restored backup): say so, without passing the check."""
    if not broken:
        return None
    first = session.scalar(select(_EVENTS.c.created_at).order_by(_EVENTS.c.seq).limit(1))
    if first is None or any(a.at() >= first for a in broken):
        return None
    return (
        f"all {len(broken)} contradicted anchor(s) are older than this trail's first event: "
        "if this database was created anew at the same place (a deleted database rebuilt), "
        f"they belong to the old one; keep them apart by moving {anchor_file} aside"
    )


def pin_legacy(
    session: Session, *, anchor_file: Path, database: str | None = None
) -> Anchor | None:
    """After an upgrade to the keyed chain: append a checkpoint when the trail holds
    events chained before keying (``key_id`` NULL) and no anchor of this database
    exists yet, so that from now on they cannot be rewritten unnoticed. None when there
    was nothing to pin."""
    if session.scalar(select(_EVENTS.c.seq).where(_EVENTS.c.key_id.is_(None)).limit(1)) is None:
        return None
    key = _trail_key(session)
    database = database or _session_database(session)
    if check_anchors(anchor_file, key=key, database=database).anchors:
        return None
    return checkpoint(session, anchor_file=anchor_file, database=database)


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
