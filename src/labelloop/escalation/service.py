"""Deadlines that climb an escalation path, and the notification inbox.

A feature that makes something wait on someone calls :func:`track` (in the same
transaction as the thing itself) and :func:`resolve` when it is done. The worker calls
:func:`escalate_due` every pass: a deadline past due moves one level up its path (for
cases: adjudicator → lead → owner), gets a fresh SLA, appends a ``<subject>.escalate``
trail event and notifies the people of the new level. The move is a compare-and-set on
the level, so two workers never escalate one deadline twice.

Roles of a path are project roles (``lead``, ``adjudicator``, ...) plus ``owner``: the
guideline owner, i.e. the lead who published the current guideline version (every lead
when nobody holds that).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import Membership, User
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission, Role
from labelloop.escalation.models import Deadline, Notification
from labelloop.escalation.paths import OWNER, due_after, path_for, sla_text
from labelloop.store.base import rowcount, utcnow
from labelloop.store.bulk import id_in, unnest_insert


def track(
    session: Session,
    *,
    project_id: int,
    subject: str,
    subject_id: int,
    title: str,
    link: str,
    path: Sequence[str],
    slas: Sequence[int | str],
    now: datetime | None = None,
) -> Deadline:
    """Start the clock on one subject: ``path`` names the role of each level, ``slas``
    what each level gets (minutes, or ``"<n>bd"`` business days; see
    :func:`labelloop.escalation.paths.due_after`)."""
    now = now or utcnow()
    _check_path(path, slas)
    deadline = Deadline(
        project_id=project_id,
        subject=subject,
        subject_id=subject_id,
        title=title,
        link=link,
        path=list(path),
        level=0,
        slas=_slas(slas),
        started_at=now,
        due_at=due_after(now, _slas(slas)[0]),
    )
    session.add(deadline)
    session.flush()
    return deadline


def track_many(session: Session, rows: Sequence[dict[str, Any]], *, now: datetime) -> None:
    """:func:`track` for many subjects at once (one bulk insert); each row holds the
    keyword arguments of :func:`track` but ``now``."""
    if not rows:
        return
    for row in rows:
        _check_path(row["path"], row["slas"])
    full = [
        {
            **row,
            "path": list(row["path"]),
            "slas": _slas(row["slas"]),
            "level": 0,
            "started_at": now,
            "due_at": due_after(now, _slas(row["slas"])[0]),
        }
        for row in rows
    ]
    if session.get_bind().dialect.name == "postgresql":
        unnest_insert(session, Deadline.__table__, full)  # type: ignore[arg-type]
    else:  # Core executemany: no ORM bookkeeping per row
        session.connection().execute(insert(Deadline.__table__), full)  # type: ignore[arg-type]


def track_levels(
    session: Session,
    *,
    project_id: int,
    subject: str,
    subject_id: int,
    title: str,
    link: str,
    now: datetime | None = None,
) -> Deadline:
    """:func:`track` on the project's path for ``subject``
    (:func:`labelloop.escalation.paths.path_for`); an existing deadline of the subject is
    returned as it is."""
    existing = deadline_of(session, subject, subject_id)
    if existing is not None:
        return existing
    levels = path_for(session, project_id, subject)
    return track(
        session,
        project_id=project_id,
        subject=subject,
        subject_id=subject_id,
        title=title,
        link=link,
        path=[lv.role for lv in levels],
        slas=[lv.sla for lv in levels],
        now=now,
    )


def _slas(slas: Sequence[int | str]) -> list[int | str]:
    return [s if isinstance(s, str) else int(s) for s in slas]


def _check_path(path: Sequence[str], slas: Sequence[int | str]) -> None:
    if (
        not path
        or len(path) != len(slas)
        or any(isinstance(m, int) and m < 1 for m in slas)
        or any(isinstance(m, str) and not (m.endswith("bd") and m[:-2].isdigit()) for m in slas)
    ):
        raise ValueError(
            f"an escalation path needs one SLA (1+ minutes or '<n>bd') per level: {path}, {slas}"
        )


def deadline_of(session: Session, subject: str, subject_id: int) -> Deadline | None:
    found: Deadline | None = session.scalar(
        select(Deadline).where(Deadline.subject == subject, Deadline.subject_id == subject_id)
    )
    return found


def resolve(
    session: Session, *, subject: str, subject_id: int, now: datetime | None = None
) -> None:
    """Stop the clock: the subject no longer waits on anyone."""
    resolve_many(session, subject=subject, subject_ids=[subject_id], now=now)


def resolve_many(
    session: Session, *, subject: str, subject_ids: Sequence[int], now: datetime | None = None
) -> int:
    """:func:`resolve` for many subjects of one kind; returns how many stopped."""
    done = 0
    for start in range(0, len(subject_ids), 10_000):
        done += rowcount(
            session.execute(
                update(Deadline)
                .where(
                    Deadline.subject == subject,
                    id_in(session, Deadline.subject_id, list(subject_ids[start : start + 10_000])),
                    Deadline.resolved_at.is_(None),
                )
                .values(resolved_at=now or utcnow())
                .execution_options(synchronize_session=False)
            )
        )
    return done


# -- who --------------------------------------------------------------------------------


def _owner(session: Session, project_id: int) -> list[int]:
    from labelloop.guidelines.service import current

    version = current(session, project_id)
    leads = members(session, project_id, Role.LEAD.value)
    if version is not None and (version.published_by or "").startswith("user:"):
        username = (version.published_by or "").removeprefix("user:")
        uid = session.scalar(select(User.id).where(User.username == username))
        if uid in leads:
            return [uid]
    return leads


def members(session: Session, project_id: int, role: str) -> list[int]:
    """Active users holding ``role`` in the project (``owner``: see the module doc)."""
    if role == OWNER:
        return _owner(session, project_id)
    rows = session.scalars(
        select(Membership.user_id)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.project_id == project_id,
            Membership.role == role,
            User.is_active.is_(True),
        )
        .order_by(Membership.user_id)
    )
    return list(dict.fromkeys(rows))


def team(session: Session, project_id: int) -> list[int]:
    """Every active user holding any role in the project."""
    rows = session.scalars(
        select(Membership.user_id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.project_id == project_id, User.is_active.is_(True))
        .order_by(Membership.user_id)
    )
    return list(dict.fromkeys(rows))


# -- notifications ----------------------------------------------------------------------


def notify(
    session: Session,
    *,
    user_ids: Iterable[int],
    project_id: int | None,
    kind: str,
    title: str,
    body: str = "",
    link: str | None = None,
    subject: str | None = None,
    subject_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Put one notification in each user's inbox; returns how many."""
    users = list(dict.fromkeys(user_ids))
    if users:
        now = now or utcnow()
        session.execute(
            insert(Notification),
            [
                {
                    "user_id": uid,
                    "project_id": project_id,
                    "kind": kind,
                    "subject": subject,
                    "subject_id": subject_id,
                    "title": title[:300],
                    "body": body,
                    "link": link,
                    "created_at": now,
                }
                for uid in users
            ],
        )
    return len(users)


def notification_json(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "project_id": n.project_id,
        "kind": n.kind,
        "title": n.title,
        "body": n.body,
        "link": n.link,
        "created_at": n.created_at.isoformat(),
        "read": n.read_at is not None,
    }


def _delivered() -> ColumnElement[bool]:
    """Notifications already due: one dated later (a gold hint waiting for its round,
    :mod:`labelloop.feedback.gold`) stays out of the inbox until then."""
    return Notification.created_at <= utcnow()


def inbox(
    session: Session, *, actor: Actor, unread_only: bool = False, limit: int = 100
) -> list[Notification]:
    """The actor's own notifications, newest first (nobody reads another's inbox)."""
    if actor.user_id is None:
        return []
    stmt = select(Notification).where(Notification.user_id == actor.user_id, _delivered())
    if actor.scope_project_id is not None:
        stmt = stmt.where(Notification.project_id == actor.scope_project_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    stmt = stmt.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def unread_count(session: Session, *, actor: Actor) -> int:
    if actor.user_id is None:
        return 0
    stmt = select(func.count(Notification.id)).where(
        Notification.user_id == actor.user_id, Notification.read_at.is_(None), _delivered()
    )
    if actor.scope_project_id is not None:
        stmt = stmt.where(Notification.project_id == actor.scope_project_id)
    return int(session.scalar(stmt) or 0)


def mark_read(session: Session, *, actor: Actor, ids: Sequence[int] | None = None) -> int:
    """Mark the actor's notifications read (``ids``, or all of them); returns how many
    changed, with a ``notification.read`` trail event when any did."""
    if actor.user_id is None:
        return 0
    stmt = update(Notification).where(
        Notification.user_id == actor.user_id, Notification.read_at.is_(None), _delivered()
    )
    if actor.scope_project_id is not None:
        stmt = stmt.where(Notification.project_id == actor.scope_project_id)
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(list(ids)))
    changed = rowcount(session.execute(stmt.values(read_at=utcnow())))
    if changed:
        trail.service.append(
            session,
            actor=actor.name,
            action="notification.read",
            entity_type="user",
            entity_id=actor.user_id,
            after={"count": changed, "ids": None if ids is None else sorted(ids)},
        )
    return int(changed)


# -- escalation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Escalated:
    deadline_id: int
    project_id: int
    subject: str
    subject_id: int
    level: int
    owner: str
    due_at: datetime
    notified: int


def escalate_due(session: Session, *, actor: Actor, now: datetime | None = None) -> list[Escalated]:
    """Move every deadline that is past due one level up its path (see the module doc).
    A deadline at the top of its path stays there."""
    now = now or utcnow()
    due = session.scalars(
        select(Deadline)
        .where(Deadline.resolved_at.is_(None), Deadline.due_at <= now)
        .order_by(Deadline.due_at, Deadline.id)
    ).all()
    done: list[Escalated] = []
    for deadline in due:
        if deadline.level + 1 >= len(deadline.path):
            continue
        moved = _escalate_one(session, actor, deadline, now)
        if moved is not None:
            done.append(moved)
    return done


def _escalate_one(
    session: Session, actor: Actor, deadline: Deadline, now: datetime
) -> Escalated | None:
    level = deadline.level + 1
    due_at = due_after(now, deadline.sla(level))
    changed = rowcount(
        session.execute(
            update(Deadline)
            .where(
                Deadline.id == deadline.id,
                Deadline.level == deadline.level,
                Deadline.resolved_at.is_(None),  # ruled meanwhile: nothing to escalate
            )
            .values(level=level, due_at=due_at, escalated_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if not changed:  # another worker moved it first
        return None
    before = {"level": deadline.level, "owner": deadline.owner, "due_at": deadline.due_at}
    session.refresh(deadline)
    owner = deadline.owner
    trail.service.append(
        session,
        actor=actor.name,
        action=f"{deadline.subject}.escalate",
        entity_type=deadline.subject,
        entity_id=deadline.subject_id,
        project_id=deadline.project_id,
        before=before,
        after={"level": level, "owner": owner, "due_at": due_at},
    )
    notified = notify(
        session,
        user_ids=members(session, deadline.project_id, owner),
        project_id=deadline.project_id,
        kind=f"{deadline.subject}.escalate",
        title=f"Escalated to you ({owner}): {deadline.title}",
        body=f"Not done within {sla_text(deadline.sla(level - 1))} at the level before; "
        f"now due {due_at:%Y-%m-%d %H:%M} UTC.",
        link=deadline.link,
        subject=deadline.subject,
        subject_id=deadline.subject_id,
        now=now,
    )
    return Escalated(
        deadline.id,
        deadline.project_id,
        deadline.subject,
        deadline.subject_id,
        level,
        owner,
        due_at,
        notified,
    )


# -- what waits -------------------------------------------------------------------------


def waiting(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    overdue_only: bool = False,
    now: datetime | None = None,
    limit: int = 500,
) -> list[Deadline]:
    """The project's unresolved deadlines, most overdue first (``project.manage``: the
    lead's overdue page)."""
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project_id)
    stmt = select(Deadline).where(Deadline.project_id == project_id, Deadline.resolved_at.is_(None))
    if overdue_only:
        stmt = stmt.where(Deadline.due_at <= (now or utcnow()))
    return list(session.scalars(stmt.order_by(Deadline.due_at, Deadline.id).limit(limit)))


def deadline_json(d: Deadline, now: datetime | None = None) -> dict[str, Any]:
    """A deadline as the API and CLI give it (``overdue_minutes``: how late it is now,
    0 when not yet due)."""
    now = now or utcnow()
    late = max(0.0, (now - d.due_at).total_seconds() / 60)
    return {
        "id": d.id,
        "subject": d.subject,
        "subject_id": d.subject_id,
        "title": d.title,
        "link": d.link,
        "owner": d.owner,
        "level": d.level,
        "path": [f"{role}:{sla_text(d.sla(i))}" for i, role in enumerate(d.path)],
        "started_at": d.started_at.isoformat(),
        "due_at": d.due_at.isoformat(),
        "escalated_at": d.escalated_at.isoformat() if d.escalated_at else None,
        "overdue_minutes": round(late),
    }
