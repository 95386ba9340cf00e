"""Workbench use cases: queue settings, serving the next item, submitting and skipping.

Queue rules (:func:`next_item`):

1. an annotator who holds an unexpired lease gets that item again (reloads are safe);
   otherwise, when the project has published a guideline version they have not
   acknowledged, nothing until they do (AcknowledgementRequired);
2. otherwise, with probability ``gold_rate``, a hidden gold item they have not labeled
   or skipped. The draw is a hash of (project, annotator, how many items they have
   finished), so it is reproducible and roughly ``gold_rate`` over time;
3. otherwise the non-gold item with the fewest distinct annotators (lowest id first)
   that they have neither labeled nor skipped and whose annotators plus other
   annotators' unexpired leases stay below the project's ``overlap``; items nobody
   else holds right now come first, so annotators working at once spread out.

An item is never served twice to one annotator. Granting a lease locks the item row
(PostgreSQL; SQLite serializes writers) and re-counts its load, so two annotators cannot
both take an item's last open slot.

Speed: candidates come from :class:`~labelloop.workbench.models.OpenItem`, an index of
the items still below the overlap kept current from the rows added since its marks
(:func:`sync_open_items`), read in (project, load, item) order and stopped after a few
rows; nothing scans every annotation per request or loops over annotations in Python.

Submissions (:func:`submit`, from the page and the API alike) are the only way
annotators label: they need the item's lease, take the server's clock and the server's
measure of active time, and go through
:func:`labelloop.projects.service.save_annotation` (the authoritative validator;
ValidationFailed writes nothing) with source ``workbench``. A submission that answers a
hidden gold check may complete an aggregate hint to the annotator, written in the same
transaction and shown only from its round on (:mod:`labelloop.feedback.gold`); the
submission's own answer is the same as for any item. Like every service here:
``session`` and ``actor`` are keywords, permissions are checked with
:func:`labelloop.accounts.policy.require`, nothing commits, and every record written
(annotations, skips, flags, settings) appends a trail event in the caller's
transaction; leases and the open-items index are working state without events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, case, delete, func, select, text, union
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import allowed, require
from labelloop.accounts.roles import Permission
from labelloop.errors import Conflict, ValidationFailed
from labelloop.feedback import gold as gold_hints
from labelloop.guidelines import service as guidelines
from labelloop.guidelines.timeline import version_at
from labelloop.projects import service as projects
from labelloop.projects.models import Annotation, GoldLabel, Item, Project
from labelloop.projects.validation import Violation
from labelloop.store.base import utcnow
from labelloop.store.conflicts import stored_row
from labelloop.workbench.models import (
    DEFAULT_GOLD_RATE,
    DEFAULT_LEASE_MINUTES,
    DEFAULT_OVERLAP,
    Lease,
    OpenItem,
    Progress,
    QueueSettings,
    QueueSync,
    Skip,
)
from labelloop.workbench.schemas import MAX_REASON, QueueStatus, SettingsIn, SettingsOut, WorkItem

#: The ``source`` of annotations made in the workbench.
SOURCE = "workbench"
#: How many candidates one query fetches (later ones are tried when a slot was taken).
_CANDIDATES = 20
#: How often (at most) PostgreSQL projects are checked for items committed late.
LATE_ITEM_CHECK = timedelta(minutes=1)


# -- settings -------------------------------------------------------------------------


def get_settings(session: Session, project: Project) -> SettingsOut:
    """The project's queue settings (the defaults when none were set)."""
    row = session.get(QueueSettings, project.id)
    if row is None:
        return SettingsOut(
            project_id=project.id,
            overlap=DEFAULT_OVERLAP,
            gold_rate=DEFAULT_GOLD_RATE,
            lease_minutes=DEFAULT_LEASE_MINUTES,
        )
    return SettingsOut.model_validate(row)


def update_settings(
    session: Session, *, actor: Actor, project: Project, change: SettingsIn
) -> SettingsOut:
    """Change overlap, gold rate or lease length (leads); logged with before and after."""
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project.id)
    # two first changes at once share the one row (no unique violation)
    row = stored_row(session, QueueSettings, {"project_id": project.id})
    before = SettingsOut.model_validate(row)
    for field in ("overlap", "gold_rate", "lease_minutes"):
        value = getattr(change, field)
        if value is not None:
            setattr(row, field, value)
    row.updated_at = utcnow()
    session.flush()
    after = SettingsOut.model_validate(row)
    if after != before:
        trail.service.append(
            session,
            actor=actor.name,
            action="workbench.settings.update",
            entity_type="project",
            entity_id=project.id,
            project_id=project.id,
            before=before.model_dump(exclude={"project_id"}),
            after=after.model_dump(exclude={"project_id"}),
        )
    return after


# -- helpers --------------------------------------------------------------------------


def _annotator(actor: Actor) -> int:
    if actor.user_id is None:
        raise ValidationFailed(
            f"{actor.name} is not a user; the workbench serves signed-in annotators",
            [Violation("actor", "not_a_user", "sign in as an annotator")],
        )
    return actor.user_id


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _one_at_a_time(session: Session, project_id: int, annotator_id: int) -> None:
    """Serialise one annotator's queue operations in a project (two tabs, a double
    click, a retried request): on PostgreSQL a transaction-scoped advisory lock on
    (project, annotator), so the second waits, then sees what the first did (its
    lease, its annotation) and gets the queue's answer (the same item, or 409) instead
    of a unique violation. SQLite already runs one writer at a time."""
    if _is_postgres(session):
        session.execute(
            text("SELECT pg_advisory_xact_lock(:project, :annotator)"),
            {"project": project_id, "annotator": annotator_id},
        )


def _gold_draw(project_id: int, annotator_id: int, position: int) -> float:
    """A uniform number in [0, 1) fixed by (project, annotator, position)."""
    digest = hashlib.sha256(f"{project_id}:{annotator_id}:{position}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _count(session: Session, stmt: Select[Any]) -> int:
    return int(session.scalar(stmt) or 0)


def _position(session: Session, project_id: int, annotator_id: int) -> int:
    """How many items the workbench has served the annotator in the project."""
    served = session.scalar(
        select(Progress.served).where(
            Progress.project_id == project_id, Progress.annotator_id == annotator_id
        )
    )
    return int(served or 0)


def _advance(session: Session, project_id: int, annotator_id: int) -> None:
    stmt = _insert(session)(Progress).values(
        project_id=project_id, annotator_id=annotator_id, served=1
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Progress.project_id, Progress.annotator_id],
            set_={"served": Progress.served + 1},
        )
    )


def _not_done_by(item_id: Any, annotator_id: int) -> list[ColumnElement[bool]]:
    """Conditions: the annotator has neither labeled nor skipped the item."""
    return [
        ~select(Annotation.id)
        .where(Annotation.item_id == item_id, Annotation.annotator_id == annotator_id)
        .exists(),
        ~select(Skip.id).where(Skip.item_id == item_id, Skip.annotator_id == annotator_id).exists(),
    ]


def _not_gold(item_id: Any) -> ColumnElement[bool]:
    return ~select(GoldLabel.id).where(GoldLabel.item_id == item_id).exists()


def _others_leases(item_id: Any, annotator_id: int, now: datetime) -> Any:
    """Live leases of other annotators on the item that hold a slot (gold ones do not)."""
    return (
        select(func.count(Lease.id))
        .where(
            Lease.item_id == item_id,
            Lease.annotator_id != annotator_id,
            Lease.expires_at > now,
            Lease.is_gold.is_(False),
        )
        .scalar_subquery()
    )


def _item_load(session: Session, item_id: int, annotator_id: int, now: datetime) -> int:
    """The item's load as the annotator would see it (their own work not counted)."""
    labeled = _count(
        session,
        select(func.count(func.distinct(Annotation.annotator_id))).where(
            Annotation.item_id == item_id, Annotation.annotator_id != annotator_id
        ),
    )
    return labeled + _count(session, select(_others_leases(item_id, annotator_id, now)))


def _done(session: Session, item_id: int, annotator_id: int) -> bool:
    return (
        session.scalar(
            select(Annotation.id)
            .where(Annotation.item_id == item_id, Annotation.annotator_id == annotator_id)
            .limit(1)
        )
        is not None
        or session.scalar(
            select(Skip.id).where(Skip.item_id == item_id, Skip.annotator_id == annotator_id)
        )
        is not None
    )


def _lease_of(session: Session, item_id: int, annotator_id: int) -> Lease | None:
    return session.scalar(
        select(Lease).where(Lease.item_id == item_id, Lease.annotator_id == annotator_id)
    )


def _view(item: Item, lease: Lease) -> WorkItem:
    return WorkItem(
        item_id=item.id,
        payload=dict(item.payload),
        metadata=dict(item.meta or {}),
        segments=dict(item.segments or {}),
        leased_at=lease.leased_at,
        expires_at=lease.expires_at,
    )


# -- the open-items index ---------------------------------------------------------------


def _insert(session: Session) -> Any:
    """The dialect's INSERT (both have ON CONFLICT)."""
    return pg_insert if _is_postgres(session) else sqlite_insert


def _annotators_of(item_id: Any) -> Any:
    return (
        select(func.count(func.distinct(Annotation.annotator_id)))
        .where(Annotation.item_id == item_id)
        .scalar_subquery()
    )


def _rebuild(
    session: Session, project: Project, overlap: int, item_mark: int, ann_mark: int
) -> None:
    """Fill :class:`OpenItem` for the project from scratch (one pass over its annotations)."""
    session.execute(delete(OpenItem).where(OpenItem.project_id == project.id))
    counts = (
        select(
            Annotation.item_id.label("item_id"),
            func.count(func.distinct(Annotation.annotator_id)).label("n"),
        )
        .where(Annotation.project_id == project.id)
        .group_by(Annotation.item_id)
        .subquery("counts")
    )
    load = func.coalesce(counts.c.n, 0)
    rows = (
        select(Item.id, Item.project_id, load)
        .outerjoin(counts, counts.c.item_id == Item.id)
        .where(Item.project_id == project.id, load < overlap)
    )
    insert = _insert(session)
    session.execute(
        insert(OpenItem)
        .from_select(["item_id", "project_id", "load"], rows)
        .on_conflict_do_nothing()
    )
    values = {
        "project_id": project.id,
        "overlap": overlap,
        "item_mark": item_mark,
        "annotation_mark": ann_mark,
        "item_count": _item_count(session, project.id),
        "synced_at": utcnow(),
    }
    if _is_postgres(session):  # fresh statistics, so the planner reads the index in order
        session.execute(text("ANALYZE work_open_items"))
    stmt = insert(QueueSync).values(**values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[QueueSync.project_id],
            set_={k: v for k, v in values.items() if k != "project_id"},
        )
    )


def _item_count(session: Session, project_id: int) -> int:
    return _count(session, select(func.count(Item.id)).where(Item.project_id == project_id))


def _refresh(session: Session, project_id: int, item_ids: Sequence[int], overlap: int) -> None:
    """Recount the distinct annotators of these items of the project: items still below
    ``overlap`` are (re)entered with their load, the others leave the index."""
    for start in range(0, len(item_ids), 500):
        chunk = list(item_ids[start : start + 500])
        loads = dict(
            session.execute(
                select(Annotation.item_id, func.count(func.distinct(Annotation.annotator_id)))
                .where(Annotation.item_id.in_(chunk))
                .group_by(Annotation.item_id)
            ).all()
        )
        full = [i for i in chunk if loads.get(i, 0) >= overlap]
        if full:
            session.execute(delete(OpenItem).where(OpenItem.item_id.in_(full)))
        open_rows = [
            {"item_id": i, "project_id": project_id, "load": loads.get(i, 0)}
            for i in chunk
            if loads.get(i, 0) < overlap
        ]
        if open_rows:
            stmt = _insert(session)(OpenItem).values(open_rows)
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[OpenItem.item_id], set_={"load": stmt.excluded.load}
                )
            )


def sync_open_items(session: Session, project: Project, overlap: int) -> None:
    """Bring the project's :class:`OpenItem` index up to date: built on first use and
    when the overlap changed; otherwise items and annotations added since the marks are
    taken in (a range scan on primary keys). On PostgreSQL an item committed late with
    a lower id than the mark shows up as a changed item count and is added then; an
    annotation committed late can only make a load too low, which the re-count under the
    item's lock catches before a lease is granted.

    On PostgreSQL the sync row is taken with ``FOR UPDATE SKIP LOCKED``: while one
    transaction brings the index up to date, the others serve from it as it is (a load
    that is too low is caught by that same re-count) instead of queueing behind the
    row, which would make every annotator's next item wait for every other's."""
    state = _sync_state(session, project.id)
    if state is False:
        return  # another transaction is syncing right now
    item_mark = session.scalar(select(func.max(Item.id)).where(Item.project_id == project.id)) or 0
    ann_mark = session.scalar(select(func.max(Annotation.id))) or 0
    if state is None or state.overlap != overlap:
        _rebuild(session, project, overlap, item_mark, ann_mark)
        return
    changed = False
    if item_mark > state.item_mark:
        new = select(Item.id).where(Item.project_id == project.id, Item.id > state.item_mark)
        new_ids = session.scalars(new).all()
        _refresh(session, project.id, new_ids, overlap)
        state.item_count += len(new_ids)
        state.item_mark, changed = item_mark, True
    if ann_mark > state.annotation_mark:
        touched = session.scalars(
            select(Annotation.item_id)
            .where(
                Annotation.id > state.annotation_mark,
                Annotation.id <= ann_mark,
                # "+ 0": filter, do not search by project (that index holds every row
                # of the project; the new rows are a short primary-key range)
                Annotation.project_id + 0 == project.id,
            )
            .distinct()
        ).all()
        _refresh(session, project.id, touched, overlap)
        state.annotation_mark, changed = ann_mark, True
    now = utcnow()
    if _is_postgres(session) and now - state.checked_at > LATE_ITEM_CHECK:
        count = _item_count(session, project.id)
        if count != state.item_count:
            missing = select(Item.id).where(
                Item.project_id == project.id,
                ~select(OpenItem.item_id).where(OpenItem.item_id == Item.id).exists(),
                _annotators_of(Item.id) < overlap,
            )
            _refresh(session, project.id, session.scalars(missing).all(), overlap)
            state.item_count = count
        state.checked_at, changed = now, True
    if changed:
        state.synced_at = utcnow()
        session.flush()


def _sync_state(session: Session, project_id: int) -> QueueSync | Literal[False] | None:
    """The project's sync row (None before the first build), or False on PostgreSQL
    when another transaction holds it."""
    if not _is_postgres(session):
        return session.get(QueueSync, project_id)
    locked = session.scalar(
        select(QueueSync)
        .where(QueueSync.project_id == project_id)
        .with_for_update(skip_locked=True)
    )
    if locked is not None:
        return locked
    exists = session.scalar(select(QueueSync.project_id).where(QueueSync.project_id == project_id))
    return False if exists is not None else None


def _candidates(
    project_id: int, annotator_id: int, now: datetime, overlap: int, *, spread: bool
) -> Select[Any]:
    """Open, non-gold items the annotator has not done and that have a free slot, least
    labeled first; with ``spread`` only items no one else holds right now. Items a
    published guideline shows as exemplars are not served: their label is known."""
    stmt = select(OpenItem.item_id).where(
        OpenItem.project_id == project_id,
        _not_gold(OpenItem.item_id),
        *_not_done_by(OpenItem.item_id, annotator_id),
        OpenItem.item_id.not_in(guidelines.shown_exemplar_items(project_id)),
    )
    others = _others_leases(OpenItem.item_id, annotator_id, now)
    stmt = stmt.where(others == 0) if spread else stmt.where(OpenItem.load + others < overlap)
    return stmt.order_by(OpenItem.load, OpenItem.item_id).limit(_CANDIDATES)


# -- the queue ------------------------------------------------------------------------


def current_lease(
    session: Session, *, actor: Actor, project: Project, now: datetime | None = None
) -> Lease | None:
    """The annotator's unexpired lease in the project, if any."""
    require(session, actor, Permission.ANNOTATE, project_id=project.id)
    annotator_id = _annotator(actor)
    now = now or utcnow()
    return session.scalar(
        select(Lease)
        .where(
            Lease.project_id == project.id,
            Lease.annotator_id == annotator_id,
            Lease.expires_at > now,
        )
        .order_by(Lease.leased_at.desc(), Lease.id.desc())
        .limit(1)
    )


class _ItemBusy(Exception):
    """Another transaction is granting this item right now (PostgreSQL)."""


def _grant(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    item_id: int,
    annotator_id: int,
    gold: bool,
    settings: SettingsOut,
    now: datetime,
) -> Lease | None:
    """Lease ``item_id`` when it still has a slot (checked under the item's row lock).

    On PostgreSQL the lock is ``FOR NO KEY UPDATE SKIP LOCKED``: two grants of one item
    still exclude each other (the second moves on to the next candidate instead of
    waiting), while inserting annotations of the item, whose foreign-key check takes
    ``FOR KEY SHARE`` on the row, is never blocked by a grant."""
    if _is_postgres(session):
        mine = session.scalar(
            select(Item.id)
            .where(Item.id == item_id)
            .with_for_update(key_share=True, skip_locked=True)
        )
        if mine is None:
            raise _ItemBusy(item_id)
    if _done(session, item_id, annotator_id):
        return None
    if not gold and _item_load(session, item_id, annotator_id, now) >= settings.overlap:
        return None
    # one live lease per annotator: their older (expired) leases in the project end here
    session.execute(
        delete(Lease).where(
            Lease.project_id == project.id,
            Lease.annotator_id == annotator_id,
            Lease.item_id != item_id,
        )
    )
    expires = now + timedelta(minutes=settings.lease_minutes)
    lease = _lease_of(session, item_id, annotator_id)
    if lease is None:
        lease = Lease(
            project_id=project.id,
            item_id=item_id,
            annotator_id=annotator_id,
            is_gold=gold,
            leased_at=now,
            expires_at=expires,
        )
        session.add(lease)
    else:
        lease.is_gold, lease.leased_at, lease.expires_at = gold, now, expires
    session.flush()
    # no trail event: the lease is its own record while it lives, and the annotation
    # that ends it keeps when it began (``started_at``); skips and submissions are
    # trailed. Serving a page thus writes no event (see docs/web.md).
    _advance(session, project.id, annotator_id)
    return lease


def _gold_candidates(
    session: Session, project_id: int, annotator_id: int, position: int
) -> list[int]:
    """Gold items the annotator has not done, rotated to start at a hashed offset. Items
    a published guideline shows as exemplars are not hidden checks: their label is known."""
    ids = list(
        session.scalars(
            select(GoldLabel.item_id)
            .where(
                GoldLabel.project_id == project_id,
                *_not_done_by(GoldLabel.item_id, annotator_id),
                GoldLabel.item_id.not_in(guidelines.shown_exemplar_items(project_id)),
            )
            .order_by(GoldLabel.item_id)
        )
    )
    if not ids:
        return []
    start = int(_gold_draw(project_id, annotator_id, -1 - position) * len(ids))
    return ids[start:] + ids[:start]


def next_item(
    session: Session, *, actor: Actor, project: Project, now: datetime | None = None
) -> WorkItem | None:
    """The item the annotator should label now (leased to them), or None when their
    queue is empty. See the module docstring for the rules."""
    require(session, actor, Permission.ANNOTATE, project_id=project.id)
    return _next_item(session, actor, project, now or utcnow(), get_settings(session, project))


def work_view(
    session: Session, *, actor: Actor, project: Project, now: datetime | None = None
) -> tuple[WorkItem | None, QueueStatus]:
    """:func:`next_item` and then :func:`queue_status`, as the workbench page shows them,
    with one permission check, one settings read and one queue sync."""
    require(session, actor, Permission.ANNOTATE, project_id=project.id)
    now = now or utcnow()
    settings = get_settings(session, project)
    sync_open_items(session, project, settings.overlap)
    work = _next_item(session, actor, project, now, settings, synced=True)
    return work, _queue_status(session, project, _annotator(actor), settings, now)


def _next_item(
    session: Session,
    actor: Actor,
    project: Project,
    now: datetime,
    settings: SettingsOut,
    *,
    synced: bool = False,
) -> WorkItem | None:
    annotator_id = _annotator(actor)
    _one_at_a_time(session, project.id, annotator_id)
    held = current_lease(session, actor=actor, project=project, now=now)
    if held is not None and not _done(session, held.item_id, annotator_id):
        return _view(projects.get_item(session, project, held.item_id), held)
    guidelines.require_acknowledged(session, actor=actor, project=project)
    position = _position(session, project.id, annotator_id)

    def take(item_id: int, gold: bool) -> WorkItem | None:
        lease = _grant(
            session,
            actor=actor,
            project=project,
            item_id=item_id,
            annotator_id=annotator_id,
            gold=gold,
            settings=settings,
            now=now,
        )
        return None if lease is None else _view(projects.get_item(session, project, item_id), lease)

    draw = _gold_draw(project.id, annotator_id, position)
    if settings.gold_rate > 0 and draw < settings.gold_rate:
        for item_id in _gold_candidates(session, project.id, annotator_id, position)[:_CANDIDATES]:
            with suppress(_ItemBusy):
                served = take(item_id, True)
                if served is not None:
                    return served
    if not synced:
        sync_open_items(session, project, settings.overlap)
    for spread in (True, False):
        query = _candidates(project.id, annotator_id, now, settings.overlap, spread=spread)
        for item_id in session.scalars(query).all():
            try:
                served = take(item_id, False)
            except _ItemBusy:
                continue  # someone else is taking it: the next candidate
            if served is not None:
                return served
            _refresh(session, project.id, [item_id], settings.overlap)
    return None


def queue_status(
    session: Session, *, actor: Actor, project: Project, now: datetime | None = None
) -> QueueStatus:
    """The annotator's counts: labeled today (UTC) and in all, skipped, and how many
    items they could still take (hidden gold checks not counted)."""
    require(session, actor, Permission.ANNOTATE, project_id=project.id)
    settings = get_settings(session, project)
    sync_open_items(session, project, settings.overlap)
    return _queue_status(session, project, _annotator(actor), settings, now or utcnow())


def _queue_status(
    session: Session, project: Project, annotator_id: int, settings: SettingsOut, now: datetime
) -> QueueStatus:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    mine = (Annotation.project_id == project.id, Annotation.annotator_id == annotator_id)
    # one pass over the annotator's rows (a condition on submitted_at in WHERE would
    # lead planners to the project's submission-time index instead)
    today = case((Annotation.submitted_at >= midnight, Annotation.item_id))
    done_total, done_today = session.execute(
        select(
            func.count(func.distinct(Annotation.item_id)), func.count(func.distinct(today))
        ).where(*mine)
    ).one()
    skipped = _count(
        session,
        select(func.count(Skip.id)).where(
            Skip.project_id == project.id, Skip.annotator_id == annotator_id
        ),
    )
    # open items minus those the annotator may not take: gold, done, skipped, or whose
    # free slots other annotators hold (each of these sets is small next to the index)
    held_full = (
        select(Lease.item_id)
        .join(OpenItem, OpenItem.item_id == Lease.item_id)
        .where(
            Lease.project_id == project.id,
            Lease.annotator_id != annotator_id,
            Lease.expires_at > now,
            Lease.is_gold.is_(False),
        )
        .group_by(Lease.item_id, OpenItem.load)
        .having(OpenItem.load + func.count(Lease.id) >= settings.overlap)
    )
    excluded = union(
        select(GoldLabel.item_id).where(GoldLabel.project_id == project.id),
        select(Annotation.item_id).where(*mine),
        select(Skip.item_id).where(
            Skip.project_id == project.id, Skip.annotator_id == annotator_id
        ),
        held_full,
    ).subquery("excluded")
    open_total = _count(
        session, select(func.count(OpenItem.item_id)).where(OpenItem.project_id == project.id)
    )
    open_excluded = _count(
        session,
        select(func.count())
        .select_from(excluded)
        .join(OpenItem, OpenItem.item_id == excluded.c.item_id),
    )
    return QueueStatus(
        done_today=int(done_today or 0),
        done_total=int(done_total or 0),
        skipped=skipped,
        remaining=open_total - open_excluded,
        overlap=settings.overlap,
    )


# -- submit and skip ------------------------------------------------------------------


def _reason(value: str | None, field: str, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise ValidationFailed(
            f"give a reason for {what}", [Violation(field, "required", "a reason is required")]
        )
    if len(text) > MAX_REASON:
        raise ValidationFailed(
            f"the reason for {what} is too long",
            [Violation(field, "too_long", f"{len(text)} characters; at most {MAX_REASON}")],
        )
    return text


def _queued_lease(session: Session, project: Project, item_id: int, annotator_id: int) -> Lease:
    """The annotator's lease on the item (expired or not); Conflict when there is none."""
    lease = _lease_of(session, item_id, annotator_id)
    if lease is None or lease.project_id != project.id:
        raise Conflict(
            f"item {item_id} is not in your queue; open the workbench to get your next item"
        )
    return lease


def _held_lease(
    session: Session, project: Project, item_id: int, annotator_id: int, now: datetime
) -> Lease:
    """The annotator's lease on the item; Conflict when they do not hold it or it
    expired and the item's slots were taken meanwhile."""
    lease = _queued_lease(session, project, item_id, annotator_id)
    if lease.expires_at <= now and not lease.is_gold:
        settings = get_settings(session, project)
        if _item_load(session, item_id, annotator_id, now) >= settings.overlap:
            raise Conflict(
                f"your lease on item {item_id} expired and other annotators completed it; "
                "open the workbench to get your next item"
            )
    return lease


def submit(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    item_id: int,
    value: Any,
    attributes: Mapping[str, Any] | None = None,
    active_seconds: float | None = None,
    uncertain: bool = False,
    uncertain_reason: str | None = None,
    now: datetime | None = None,
) -> Annotation:
    """Save the annotator's label for the item they hold and end the lease: the one way
    annotators label, from the workbench page and from the API alike.

    The queue's rules hold: the item must be leased to the annotator (it was served by
    :func:`next_item`, which applies overlap, skips and hidden gold), one vote per item,
    ``submitted_at`` is the server's clock and ``started_at`` when the item was served.
    Active time is measured by the server: the time since the item was served (at
    most the lease length); the page's own count of visible, active seconds may only
    lower it. The label goes through the schema's validator (ValidationFailed with
    every violation, nothing written). ``uncertain`` adds the flag ``{"code":
    "uncertain", "message": reason, "source": "annotator"}`` (a reason is required)
    and an ``annotation.flag`` trail event.
    """
    require(session, actor, Permission.ANNOTATE, project_id=project.id)
    annotator_id = _annotator(actor)
    _one_at_a_time(session, project.id, annotator_id)
    now = now or utcnow()
    projects.get_item(session, project, item_id)
    reason = (
        _reason(uncertain_reason, "uncertain_reason", "the uncertainty flag") if uncertain else None
    )
    lease = _held_lease(session, project, item_id, annotator_id, now)
    if _done(session, item_id, annotator_id):
        raise Conflict(f"you already finished item {item_id}")
    settings = get_settings(session, project)
    gold_check = lease.is_gold  # the lease ends with the save
    annotation = projects.save_annotation(
        session,
        actor=actor,
        project=project,
        item_id=item_id,
        annotator_id=annotator_id,
        value=value,
        attributes=attributes,
        started_at=lease.leased_at,
        submitted_at=now,
        active_seconds=_active_seconds(lease.leased_at, now, active_seconds, settings),
        # the version the annotator had read when the item was served to them
        guideline_version=version_at(session, project.id, lease.leased_at),
        source=SOURCE,
        external_key="",
        path="queue",
        before_trail=lambda _: _release(session, project, lease, settings),
    )
    if reason is not None:
        _flag_uncertain(session, actor, project, annotation, reason, now)
    if gold_check:
        gold_hints.after_check(session, project=project, annotation=annotation, now=now)
    return annotation


def _release(session: Session, project: Project, lease: Lease, settings: SettingsOut) -> None:
    """The lease ends and the item's load is recounted (before the trail event)."""
    session.delete(lease)
    session.flush()
    _refresh(session, project.id, [lease.item_id], settings.overlap)


def _active_seconds(
    started: datetime, now: datetime, reported: float | None, settings: SettingsOut
) -> float:
    """Seconds of work on an item as the server saw them: since it was served, capped
    at the lease length; a lower count from the page (time the page was visible and in
    use) is taken, a higher one never."""
    elapsed = max((now - started).total_seconds(), 0.0)
    elapsed = min(elapsed, settings.lease_minutes * 60.0)
    if reported is not None and 0 <= reported < elapsed:
        elapsed = reported
    return round(elapsed, 1)


def _flag_uncertain(
    session: Session,
    actor: Actor,
    project: Project,
    annotation: Annotation,
    reason: str,
    now: datetime | None = None,
) -> None:
    flag = {"code": "uncertain", "field": "value", "message": reason, "source": "annotator"}
    before = list(annotation.flags or [])
    annotation.flags = [*before, flag]
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="annotation.flag",
        entity_type="annotation",
        entity_id=annotation.id,
        project_id=project.id,
        before={"flags": before},
        after={"flags": annotation.flags},
    )
    _await_triage(session, project, annotation, now)


def _await_triage(
    session: Session, project: Project, annotation: Annotation, now: datetime | None = None
) -> None:
    """Start the ``flag`` deadline (:mod:`labelloop.escalation.paths`) unless the item
    has a case: an open one carries the wait, a ruled one has answered it (detection
    leaves ruled items alone, so nothing else would end the wait)."""
    from labelloop.adjudication.models import OPEN, RULED, Case
    from labelloop.escalation import service as escalation

    if session.scalar(
        select(Case.id).where(Case.item_id == annotation.item_id, Case.status.in_([OPEN, RULED]))
    ):
        return
    item = session.get(Item, annotation.item_id)
    escalation.track_levels(
        session,
        project_id=project.id,
        subject="flag",
        subject_id=annotation.id,
        title=f"Item {item.external_id if item else annotation.item_id!r} flagged as uncertain",
        link=f"/projects/{project.id}/cases",
        now=now,
    )


#: Fields of an API submission that only the import path takes as given.
RECORD_ONLY = ("annotator_id", "started_at", "submitted_at", "guideline_version", "external_key")


def submit_from_api(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    item_id: int,
    value: Any,
    attributes: Mapping[str, Any] | None = None,
    active_seconds: float | None = None,
    uncertain: bool = False,
    uncertain_reason: str | None = None,
    recorded: Mapping[str, Any] | None = None,
) -> Annotation:
    """``POST /api/v1/projects/{id}/annotations``: callers who may import
    (``data.import``: leads) record an annotation as given, for any annotator of the
    project and with its own times (:func:`labelloop.projects.service.submit_annotation`);
    everyone else labels through the queue (:func:`submit`), and giving any of
    :data:`RECORD_ONLY` is a 422 naming it."""
    given = {k: v for k, v in (recorded or {}).items() if v not in (None, "")}
    if allowed(session, actor, Permission.DATA_IMPORT, project_id=project.id):
        annotator_id = given.get("annotator_id", actor.user_id)
        if annotator_id is None:
            raise ValidationFailed(
                "annotator_id is required for this caller",
                [Violation("annotator_id", "required", "give the annotator's user id")],
            )
        reason = (
            _reason(uncertain_reason, "uncertain_reason", "the uncertainty flag")
            if uncertain
            else None
        )
        annotation = projects.submit_annotation(
            session,
            actor=actor,
            project=project,
            item_id=item_id,
            annotator_id=annotator_id,
            value=value,
            attributes=attributes,
            started_at=given.get("started_at"),
            submitted_at=given.get("submitted_at"),
            active_seconds=active_seconds,
            guideline_version=given.get("guideline_version"),
            source="api",
            external_key=given.get("external_key", ""),
        )
        if reason is not None:
            _flag_uncertain(session, actor, project, annotation, reason)
        return annotation
    require(session, actor, Permission.ANNOTATE, project_id=project.id)
    refused = [f for f in RECORD_ONLY if f in given]
    if refused:
        raise ValidationFailed(
            "annotators submit through the queue: the server sets "
            + ", ".join(refused)
            + " (only leads may record annotations as given)",
            [Violation(f, "not_allowed", "set by the server for annotators") for f in refused],
        )
    return submit(
        session,
        actor=actor,
        project=project,
        item_id=item_id,
        value=value,
        attributes=attributes,
        active_seconds=active_seconds,
        uncertain=uncertain,
        uncertain_reason=uncertain_reason,
    )


def skip(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    item_id: int,
    reason: str | None,
    now: datetime | None = None,
) -> Skip:
    """Skip the item the annotator holds, with a reason; it is never offered to them
    again."""
    require(session, actor, Permission.ANNOTATE, project_id=project.id)
    annotator_id = _annotator(actor)
    _one_at_a_time(session, project.id, annotator_id)
    now = now or utcnow()
    projects.get_item(session, project, item_id)
    text = _reason(reason, "reason", "skipping")
    lease = _queued_lease(session, project, item_id, annotator_id)
    if _done(session, item_id, annotator_id):
        raise Conflict(f"you already finished item {item_id}")
    record = Skip(
        project_id=project.id,
        item_id=item_id,
        annotator_id=annotator_id,
        reason=text,
        created_at=now,
    )
    session.add(record)
    session.delete(lease)
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="workbench.skip",
        entity_type="item",
        entity_id=item_id,
        project_id=project.id,
        after={"annotator_id": annotator_id, "reason": text, "gold": lease.is_gold},
    )
    return record


__all__ = [
    "SOURCE",
    "current_lease",
    "get_settings",
    "next_item",
    "queue_status",
    "skip",
    "submit",
    "submit_from_api",
    "update_settings",
]
