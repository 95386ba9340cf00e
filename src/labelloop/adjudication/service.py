"""Adjudication use cases: detection settings, finding and opening cases, the
adjudicator's queue, rulings, and the digest of notable rulings.

Reading and ruling cases need ``adjudicate`` (adjudicators, leads); opening a case by
hand also ``audit.review`` (auditors, mentors); the settings ``project.manage``;
reading rulings ``project.read`` (the whole team learns from them). Every write
appends a trail event in the caller's transaction. A case waits on someone: it is
tracked by :mod:`labelloop.escalation` (adjudicator → lead → guideline owner, each
level with the project's SLA) until it is ruled.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import allowed, require, sees
from labelloop.accounts.roles import Permission
from labelloop.adjudication import detect as signals_of
from labelloop.adjudication import models as m
from labelloop.adjudication.models import (
    OPEN,
    RULED,
    AdjudicationSettings,
    Case,
)
from labelloop.adjudication.reading import read_annotations
from labelloop.adjudication.votes import Votes, tally
from labelloop.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from labelloop.escalation import service as escalation
from labelloop.escalation.models import Deadline
from labelloop.escalation.paths import Level, path_for
from labelloop.projects.models import Annotation, Item, Project
from labelloop.projects.validation import Violation
from labelloop.store.base import utcnow
from labelloop.store.bulk import id_in, unnest_insert
from labelloop.store.conflicts import stored_row

#: The escalation subject of an annotation flagged as uncertain.
FLAG = "flag"
SUBJECT = "case"

# -- settings -------------------------------------------------------------------------

#: Field → (lowest, highest) allowed.
_RANGES: dict[str, tuple[float, float]] = {
    "posterior_below": (0.0, 1.0),
    "spread_min_votes": (2, 1000),
    "spread_max_share": (0.0, 1.0),
    "model_consensus": (0.0, 1.0),
    "model_confidence": (0.0, 1.0),
    "rationale_min": (1, 2000),
    "sla_hours": (0.05, 24 * 365),
    "detect_minutes": (1, 60 * 24 * 31),
}


_WHOLE = frozenset({"spread_min_votes", "rationale_min", "detect_minutes"})


def settings_of(session: Session, project: Project) -> AdjudicationSettings:
    """The project's settings (the defaults, unsaved, when none were stored): reads
    only, so :func:`find` may run it on a read-only session."""
    found = session.get(AdjudicationSettings, project.id)
    if found is None:
        found = AdjudicationSettings(
            project_id=project.id,
            posterior_below=m.DEFAULT_POSTERIOR_BELOW,
            spread_min_votes=m.DEFAULT_SPREAD_MIN_VOTES,
            spread_max_share=m.DEFAULT_SPREAD_MAX_SHARE,
            model_consensus=m.DEFAULT_MODEL_CONSENSUS,
            model_confidence=m.DEFAULT_MODEL_CONFIDENCE,
            rationale_min=m.DEFAULT_RATIONALE_MIN,
            sla_hours=m.DEFAULT_SLA_HOURS,
            anonymous=False,
            detect_minutes=m.DEFAULT_DETECT_MINUTES,
        )
    return found


def _stored_settings(session: Session, project: Project) -> AdjudicationSettings:
    """The project's settings row for writing, created with the defaults on first use
    without a race between two first writers (:func:`labelloop.store.conflicts.stored_row`;
    on PostgreSQL it stays locked to the end of the transaction)."""
    return stored_row(session, AdjudicationSettings, {"project_id": project.id})


def settings_json(cfg: AdjudicationSettings) -> dict[str, Any]:
    return {
        "posterior_below": cfg.posterior_below,
        "spread_min_votes": cfg.spread_min_votes,
        "spread_max_share": cfg.spread_max_share,
        "model_consensus": cfg.model_consensus,
        "model_confidence": cfg.model_confidence,
        "rationale_min": cfg.rationale_min,
        "sla_hours": cfg.sla_hours,
        "anonymous": cfg.anonymous,
        "detect_minutes": cfg.detect_minutes,
    }


def update_settings(
    session: Session, *, actor: Actor, project: Project, changes: dict[str, Any]
) -> AdjudicationSettings:
    """Change some settings (unknown or out-of-range fields: 422, nothing written; no
    changes: nothing written)."""
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project.id)
    if not changes:
        return settings_of(session, project)
    problems: list[Violation] = []
    for name, value in changes.items():
        if name == "anonymous":
            if not isinstance(value, bool):
                problems.append(Violation(name, "type", "true or false"))
        elif name not in _RANGES:
            problems.append(Violation(name, "unknown", f"no setting {name!r}"))
        elif isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(Violation(name, "type", "a number"))
        elif not _RANGES[name][0] <= value <= _RANGES[name][1]:
            low, high = _RANGES[name]
            problems.append(Violation(name, "range", f"between {low:g} and {high:g}"))
    if problems:
        raise ValidationFailed("the adjudication settings were not changed", problems)
    cfg = _stored_settings(session, project)
    before = settings_json(cfg)
    for name, value in changes.items():
        setattr(cfg, name, int(value) if name in _WHOLE else value)
    cfg.updated_at = utcnow()
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="adjudication.settings",
        entity_type="project",
        entity_id=project.id,
        project_id=project.id,
        before=before,
        after=settings_json(cfg),
    )
    return cfg


# -- detection ------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectResult:
    opened: int  # new cases
    candidates: int  # items with a signal (open or ruled ones left out)
    by_reason: dict[str, int]  # new cases by their reason
    seconds: float


def _settled(session: Session, project: Project) -> set[int]:
    """Items with an open case or a ruling: detection leaves them alone."""
    return set(
        session.scalars(
            select(Case.item_id).where(
                Case.project_id == project.id, Case.status.in_((OPEN, RULED))
            )
        )
    )


def _title(external_id: str, reason: str) -> str:
    return f"case on item {external_id!r} ({reason.replace('_', ' ')})"


def _insert_cases(session: Session, rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Insert the cases no other transaction opened first; returns (id, item id) of the
    new ones. Two detections at once cannot both open a case on one item: the partial
    unique index turns the loser's row into a no-op."""
    if not rows:
        return []
    if session.get_bind().dialect.name == "postgresql":
        found = unnest_insert(
            session,
            Case.__table__,  # type: ignore[arg-type]
            rows,
            suffix="ON CONFLICT (item_id) WHERE status = 'open' DO NOTHING RETURNING id, item_id",
        )
        return cast(list[tuple[int, int]], [tuple(row) for row in found])
    stmt = (
        sqlite.insert(Case)
        .on_conflict_do_nothing(index_elements=[Case.item_id], index_where=text("status = 'open'"))
        .returning(Case.id, Case.item_id)
    )
    out: list[tuple[int, int]] = []
    for start in range(0, len(rows), 1000):
        out += [(int(i), int(j)) for i, j in session.execute(stmt, rows[start : start + 1000])]
    return out


@dataclass(frozen=True)
class Findings:
    """What a detection read: the votes and the signals per item."""

    votes: Votes
    signals: signals_of.Signals
    seconds: float


def find(session: Session, *, actor: Actor, project: Project) -> Findings:
    """Read the project and find every signal (reads only: :func:`detect_apart` runs it
    on a read-only connection, so annotators' writes do not wait for it)."""
    require(session, actor, Permission.ADJUDICATE, project_id=project.id)
    started = time.perf_counter()
    cfg = settings_of(session, project)
    read = read_annotations(session, project)
    votes = tally(read.item, read.annotator, read.label, read.categories)
    found = signals_of.Signals()
    signals_of.vote_signals(votes, cfg, found)
    signals_of.model_signals(session, project, votes, cfg, found)
    signals_of.flag_signals(read.item[read.flagged], found)
    signals_of.audit_signals(session, project, found)
    return Findings(votes, found, time.perf_counter() - started)


def detect(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    now: datetime | None = None,
    findings: Findings | None = None,
) -> DetectResult:
    """Open a case on every item with a signal (see :mod:`labelloop.adjudication.detect`)
    and no open case or ruling yet; ``findings`` from :func:`find` when read apart (as
    :func:`detect_apart` does). Running it again opens nothing new."""
    require(session, actor, Permission.ADJUDICATE, project_id=project.id)
    started, now = time.perf_counter(), now or utcnow()
    findings = findings or find(session, actor=actor, project=project)
    # locked first: on PostgreSQL two detections of one project then take turns
    cfg = _stored_settings(session, project)
    settled = _settled(session, project)
    wanted = sorted(set(findings.signals.by_item) - settled)
    opened = _open_many(session, actor, project, findings.votes, findings.signals, wanted, now)
    cfg.detected_at = now
    reasons = Counter(reason for _, _, reason in opened)
    trail.service.append(
        session,
        actor=actor.name,
        action="case.detect",
        entity_type="project",
        entity_id=project.id,
        project_id=project.id,
        after={
            "opened": [[cid, item, reason] for cid, item, reason in opened],
            "settings": settings_json(cfg),
        },
    )
    if opened:
        _announce(session, project, reasons, now)
    seconds = findings.seconds + time.perf_counter() - started
    return DetectResult(len(opened), len(wanted), dict(reasons), round(seconds, 3))


def detect_apart(
    *,
    reader: Session,
    session: Session,
    actor: Actor,
    project: Project,
    now: datetime | None = None,
) -> DetectResult:
    """Detection as the worker, the API, the page and the CLI run it: :func:`find` on
    ``reader``, then :func:`detect` on ``session`` with what it found. ``reader`` is a
    read-only session (on SQLite its deferred BEGIN takes no write lock, so the reading,
    seconds on a large project, holds up no annotator), or ``session`` itself where
    reading blocks no writer (PostgreSQL); ``session`` then holds the write lock only
    for the short write. ``project`` may come from either session."""
    found = find(reader, actor=actor, project=project)
    target = project if reader is session else session.get(Project, project.id)
    if target is None:  # deleted between the two steps
        raise NotFound(f"no project with id {project.id}")
    return detect(session, actor=actor, project=target, now=now, findings=found)


def _announce(session: Session, project: Project, reasons: Counter[str], now: datetime) -> None:
    n = sum(reasons.values())
    escalation.notify(
        session,
        user_ids=escalation.members(
            session, project.id, path_for(session, project.id, SUBJECT)[0].role
        ),
        project_id=project.id,
        kind="case.open",
        title=f"{n} new case{'s' if n != 1 else ''} in {project.name}",
        body=", ".join(f"{k} {r.replace('_', ' ')}" for r, k in reasons.most_common()),
        link=f"/projects/{project.id}/cases",
        now=now,
    )


def detection_due(session: Session, now: datetime) -> list[int]:
    """Projects whose last detection is at least their ``detect_minutes`` old (or that
    never ran one), for the worker."""
    from datetime import timedelta

    ids = session.scalars(select(Project.id).order_by(Project.id)).all()
    out = []
    for pid in ids:
        cfg = session.get(AdjudicationSettings, pid)
        last = None if cfg is None else cfg.detected_at
        if cfg is None or last is None or now - last >= timedelta(minutes=cfg.detect_minutes):
            out.append(pid)
    return out


def _open_many(
    session: Session,
    actor: Actor,
    project: Project,
    votes: Votes,
    found: signals_of.Signals,
    wanted: list[int],
    now: datetime,
) -> list[tuple[int, int, str]]:
    """Insert cases (and their deadlines) for ``wanted`` items; (case, item, reason)."""
    if not wanted:
        return []
    scores = signals_of.score(session, project, votes, found, wanted)
    reason_of = {item_id: found.primary(item_id) for item_id in wanted}
    rows: list[dict[str, Any]] = [
        {
            "project_id": project.id,
            "item_id": item_id,
            "reason": reason_of[item_id],
            "signals": found.by_item[item_id],
            "priority": scores[item_id].priority,
            "uncertainty": scores[item_id].uncertainty,
            "impact": scores[item_id].impact,
            "posterior": scores[item_id].posterior,
            "consensus": scores[item_id].consensus,
            "status": OPEN,
            "opened_by": actor.name,
            "opened_at": now,
        }
        for item_id in wanted
    ]
    new = _insert_cases(session, rows)
    names = _external_ids(session, [item for _, item in new])
    levels = path_for(session, project.id, SUBJECT)
    escalation.track_many(
        session,
        [
            _deadline_row(project, cid, _title(names[item], reason_of[item]), levels)
            for cid, item in new
        ],
        now=now,
    )
    hand_over_flags(session, [item for _, item in new], now)
    return [(cid, item, reason_of[item]) for cid, item in new]


def _deadline_row(
    project: Project, case_id: int, title: str, levels: list[Level]
) -> dict[str, Any]:
    return {
        "project_id": project.id,
        "subject": SUBJECT,
        "subject_id": case_id,
        "title": title,
        "link": f"/cases/{case_id}",
        "path": [lv.role for lv in levels],
        "slas": [lv.sla for lv in levels],
    }


def hand_over_flags(session: Session, item_ids: list[int], now: datetime) -> None:
    """Stop the ``flag`` deadlines of the items' flagged annotations: their cases now
    carry the wait (see :mod:`labelloop.escalation.paths`)."""
    flagged: list[int] = []
    for start in range(0, len(item_ids), 10_000):
        chunk = item_ids[start : start + 10_000]
        flagged += session.scalars(
            select(Deadline.subject_id)
            .join(Annotation, Annotation.id == Deadline.subject_id)
            .where(
                Deadline.subject == FLAG,
                Deadline.resolved_at.is_(None),
                id_in(session, Annotation.item_id, chunk),
            )
        ).all()
    escalation.resolve_many(session, subject=FLAG, subject_ids=flagged, now=now)


def _external_ids(session: Session, item_ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for start in range(0, len(item_ids), 20_000):
        chunk = item_ids[start : start + 20_000]
        out |= dict(
            session.execute(select(Item.id, Item.external_id).where(id_in(session, Item.id, chunk)))
            .tuples()
            .all()
        )
    return out


def _item_votes(session: Session, project: Project, item_id: int) -> Votes:
    """The votes of one item alone (consensus: the plurality label)."""
    from labelloop.audits.population import label_key

    rows = session.execute(
        select(Annotation.annotator_id, Annotation.value).where(Annotation.item_id == item_id)
    ).all()
    keys = [label_key(v) for _, v in rows]
    categories = sorted(set(keys))
    code = {k: i for i, k in enumerate(categories)}
    return tally(
        np.full(len(rows), item_id, dtype=np.int64),
        np.asarray([a for a, _ in rows], dtype=np.int64),
        np.asarray([code[k] for k in keys], dtype=np.int64),
        categories,
        infer=False,
    )


# -- opening by hand ------------------------------------------------------------------


def _item(session: Session, project: Project, item: int | str) -> Item:
    from labelloop.projects.service import get_item

    if isinstance(item, int):
        return get_item(session, project, item)
    found = session.scalar(
        select(Item).where(Item.project_id == project.id, Item.external_id == item)
    )
    if found is None:
        raise NotFound(f"no item {item!r} in project {project.name!r}")
    return found


def _may_open(session: Session, actor: Actor, project_id: int) -> None:
    for permission in (Permission.ADJUDICATE, Permission.AUDIT_REVIEW):
        if allowed(session, actor, permission, project_id=project_id):
            return
    raise PermissionDenied(f"{actor.name} may not open cases in project {project_id}")


def open_case(
    session: Session, *, actor: Actor, project: Project, item: int | str, note: str
) -> Case:
    """Open a case on one item (its id, or its external id as text) by hand, saying
    why (409 when one is open already)."""
    _may_open(session, actor, project.id)
    note = (note or "").strip()
    if not note:
        raise ValidationFailed(
            "a case opened by hand needs a note",
            [Violation("note", "required", "say what is unclear about the item")],
        )
    target = _item(session, project, item)
    existing = session.scalar(select(Case.id).where(Case.item_id == target.id, Case.status == OPEN))
    if existing is not None:
        raise Conflict(f"item {target.external_id!r} already has open case {existing}")
    now = utcnow()
    found = signals_of.Signals()
    found.add(target.id, "manual", note)
    opened = _open_many(
        session,
        actor,
        project,
        _item_votes(session, project, target.id),
        found,
        [target.id],
        now,
    )
    if not opened:
        raise Conflict(f"item {target.external_id!r} already has an open case")
    case = session.get(Case, opened[0][0])
    assert case is not None
    case.note = note
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="case.open",
        entity_type="case",
        entity_id=case.id,
        project_id=project.id,
        after={"item_id": target.id, "reason": "manual", "note": note, "priority": case.priority},
    )
    escalation.notify(
        session,
        user_ids=escalation.members(
            session, project.id, path_for(session, project.id, SUBJECT)[0].role
        ),
        project_id=project.id,
        kind="case.open",
        title=f"New case on item {target.external_id!r} in {project.name}",
        body=note,
        link=f"/cases/{case.id}",
        subject=SUBJECT,
        subject_id=case.id,
        now=now,
    )
    return case


# -- reading --------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseRow:
    """A case with its item's external id and its deadline."""

    case: Case
    item: str
    deadline: Deadline | None

    def as_json(self) -> dict[str, Any]:
        c, d = self.case, self.deadline
        return {
            "id": c.id,
            "item": self.item,
            "item_id": c.item_id,
            "reason": c.reason,
            "priority": c.priority,
            "status": c.status,
            "opened_at": c.opened_at.isoformat(),
            "due_at": None if d is None or d.resolved_at else d.due_at.isoformat(),
            "level": None if d is None else d.owner,
            "signals": c.signals,
            "consensus": c.consensus,
            "posterior": c.posterior,
            "uncertainty": c.uncertainty,
            "impact": c.impact,
        }


def _rows(session: Session, stmt: Any) -> list[CaseRow]:
    rows = session.execute(
        stmt.add_columns(Item.external_id, Deadline)
        .join(Item, Item.id == Case.item_id)
        .outerjoin(Deadline, (Deadline.subject == SUBJECT) & (Deadline.subject_id == Case.id))
    ).all()
    return [CaseRow(case, ext, deadline) for case, ext, deadline in rows]


def list_cases(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    status: str | None = OPEN,
    limit: int = 200,
    offset: int = 0,
) -> list[CaseRow]:
    """The project's cases, highest priority first (then oldest); ``status`` ``None``
    lists all."""
    require(session, actor, Permission.ADJUDICATE, project_id=project.id)
    stmt = select(Case).where(Case.project_id == project.id)
    if status is not None:
        stmt = stmt.where(Case.status == status)
    stmt = stmt.order_by(Case.priority.desc(), Case.opened_at, Case.id).limit(limit).offset(offset)
    return _rows(session, stmt)


def count_cases(session: Session, *, actor: Actor, project: Project) -> dict[str, int]:
    require(session, actor, Permission.ADJUDICATE, project_id=project.id)
    rows = session.execute(
        select(Case.status, func.count()).where(Case.project_id == project.id).group_by(Case.status)
    ).tuples()
    return {status: int(n) for status, n in rows}


def case_row(session: Session, case_id: int) -> CaseRow:
    """A case with its item and deadline (no permission check: for answering the one
    who just opened it)."""
    return _rows(session, select(Case).where(Case.id == case_id))[0]


def get_case(session: Session, *, actor: Actor, case_id: int) -> CaseRow:
    """One case (404 also when the actor may not know its project exists)."""
    case = session.get(Case, case_id)
    if case is None or not sees(session, actor, case.project_id):
        raise NotFound(f"no case {case_id}")
    require(session, actor, Permission.ADJUDICATE, project_id=case.project_id)
    return _rows(session, select(Case).where(Case.id == case_id))[0]


def next_case(
    session: Session, *, actor: Actor, project: Project, after: int | None = None
) -> CaseRow | None:
    """The open case to rule next: the top of the queue (priority, then oldest); with
    ``after``, the open case that follows that one in queue order, wrapping to the top,
    so skipping walks down the queue (``after`` may be ruled by now)."""
    require(session, actor, Permission.ADJUDICATE, project_id=project.id)
    stmt = select(Case).where(Case.project_id == project.id, Case.status == OPEN)
    order = (Case.priority.desc(), Case.opened_at, Case.id)
    ref = None if after is None else session.get(Case, after)
    if ref is not None and ref.project_id == project.id:
        later = or_(
            Case.priority < ref.priority,
            and_(Case.priority == ref.priority, Case.opened_at > ref.opened_at),
            and_(
                Case.priority == ref.priority,
                Case.opened_at == ref.opened_at,
                Case.id > ref.id,
            ),
        )
        found = _rows(session, stmt.where(later).order_by(*order).limit(1))
        if found:
            return found[0]
        stmt = stmt.where(Case.id != ref.id)
    found = _rows(session, stmt.order_by(*order).limit(1))
    return found[0] if found else None
