"""Feedback use cases: settings and templates, notes written by hand or generated,
sending, the recipient's acknowledgement (agree, or disagree with a reason, which opens
an adjudication case on the note's item), replies, resolution.

Writing, editing and sending notes needs ``feedback.send`` (leads); a note is read by
its recipient and by holders of ``feedback.send``; only the recipient acknowledges.
Every write appends a trail event in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import allowed, require, sees
from labelloop.accounts.roles import Permission
from labelloop.errors import NotFound, ValidationFailed
from labelloop.feedback import templates as tpl
from labelloop.feedback.models import (
    DRAFT,
    SENT,
    FeedbackNote,
    FeedbackSettings,
)
from labelloop.projects.models import Project
from labelloop.projects.validation import Violation
from labelloop.store.base import utcnow
from labelloop.store.conflicts import stored_row

SEVERITIES = ("low", "medium", "high", "critical")


def settings_of(session: Session, project: Project) -> FeedbackSettings:
    """The project's settings (the defaults, unsaved, when none were stored): reads
    only, so it serves read-only sessions too."""
    found = session.get(FeedbackSettings, project.id)
    return found or FeedbackSettings(
        project_id=project.id, auto_send=False, due_days=7, templates=[]
    )


def _stored_settings(session: Session, project: Project) -> FeedbackSettings:
    """The project's settings row for writing, created with the defaults on first use
    without a race between two first writers (:func:`labelloop.store.conflicts.stored_row`)."""
    return stored_row(session, FeedbackSettings, {"project_id": project.id})


def catalogue(session: Session, project: Project) -> dict[str, tpl.Template]:
    return tpl.catalogue(settings_of(session, project).templates)


def update_settings(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    auto_send: bool | None = None,
    due_days: int | None = None,
    templates: list[dict[str, Any]] | None = None,
) -> FeedbackSettings:
    """Change the settings; ``templates`` replaces the project's own templates (checked
    with :func:`labelloop.feedback.templates.check_custom`)."""
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project.id)
    if due_days is not None and not 1 <= due_days <= 365:
        raise ValidationFailed(
            "settings not changed", [Violation("due_days", "range", "between 1 and 365")]
        )
    if templates is not None:
        try:
            templates = tpl.check_custom(templates)
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise ValidationFailed(
                "templates not changed", [Violation(field, "invalid", message)]
            ) from None
    cfg = _stored_settings(session, project)
    before = _settings_json(cfg)
    if auto_send is not None:
        cfg.auto_send = auto_send
    if due_days is not None:
        cfg.due_days = due_days
    if templates is not None:
        cfg.templates = templates
    cfg.updated_at = utcnow()
    session.flush()
    _event(
        session,
        actor,
        project.id,
        "feedback.settings",
        "project",
        project.id,
        before,
        _settings_json(cfg),
    )
    return cfg


def _settings_json(cfg: FeedbackSettings) -> dict[str, Any]:
    return {"auto_send": cfg.auto_send, "due_days": cfg.due_days, "templates": cfg.templates}


def _event(
    session: Session,
    actor: Actor,
    project_id: int,
    action: str,
    entity_type: str,
    entity_id: int | None,
    before: Any,
    after: Any,
) -> None:
    trail.service.append(
        session,
        actor=actor.name,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        project_id=project_id,
        before=before,
        after=after,
    )


def note_json(n: FeedbackNote, *, with_items: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": n.id,
        "project_id": n.project_id,
        "recipient_id": n.recipient_id,
        "template": n.template,
        "severity": n.severity,
        "status": n.status,
        "message": n.message,
        "fields": n.fields,
        "rule_refs": n.rule_refs,
        "category": n.category,
        "confusion": None if n.given is None else {"given": n.given, "expected": n.expected},
        "source": n.source,
        "source_id": n.source_id,
        "found_at": n.found_at.isoformat() if n.found_at else None,
        "sent_at": n.sent_at.isoformat() if n.sent_at else None,
        "due_at": n.due_at.isoformat() if n.due_at else None,
        "acknowledged_at": n.acknowledged_at.isoformat() if n.acknowledged_at else None,
        "response": n.response,
        "response_reason": n.response_reason,
        "case_id": n.case_id,
        "resolved_at": n.resolved_at.isoformat() if n.resolved_at else None,
    }
    if with_items:
        out["items"] = [
            {
                "item_id": i.item_id,
                "annotation_id": i.annotation_id,
                "given": i.given,
                "reference": i.reference,
                "reference_source": i.reference_source,
            }
            for i in n.items
        ]
    return out


# -- reading --------------------------------------------------------------------------


def shown(now: datetime | None = None) -> ColumnElement[bool]:
    """Notes their recipient sees: sent, and not scheduled for later (a gold hint waits
    for its round: :mod:`labelloop.feedback.gold`)."""
    return and_(
        FeedbackNote.status != DRAFT,
        or_(FeedbackNote.sent_at.is_(None), FeedbackNote.sent_at <= (now or utcnow())),
    )


def scheduled(note: FeedbackNote, now: datetime | None = None) -> bool:
    """Whether the note is sent for a moment still to come (hidden from its recipient)."""
    return note.sent_at is not None and note.sent_at > (now or utcnow())


def get_note(session: Session, *, actor: Actor, note_id: int) -> FeedbackNote:
    """A note, for its recipient or a holder of ``feedback.send``; 404 for everyone
    else alike (a note of another member, a draft, the recipient's own note while it is
    scheduled, or no note), so probing note ids tells nothing, in particular not that a
    scheduled gold-miss hint exists."""
    note = session.get(FeedbackNote, note_id)
    if note is None or not sees(session, actor, note.project_id):
        raise NotFound(f"no feedback note {note_id}")
    if allowed(session, actor, Permission.FEEDBACK_SEND, project_id=note.project_id):
        return note
    if note.recipient_id != actor.user_id or note.status == DRAFT or scheduled(note):
        raise NotFound(f"no feedback note {note_id}")
    return note


def list_notes(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    status: str | None = None,
    recipient_id: int | None = None,
    limit: int = 200,
) -> list[FeedbackNote]:
    """Notes of the project, newest first (``feedback.send``)."""
    require(session, actor, Permission.FEEDBACK_SEND, project_id=project.id)
    stmt = select(FeedbackNote).where(FeedbackNote.project_id == project.id)
    if status is not None:
        stmt = stmt.where(FeedbackNote.status == status)
    if recipient_id is not None:
        stmt = stmt.where(FeedbackNote.recipient_id == recipient_id)
    return list(session.scalars(stmt.order_by(FeedbackNote.id.desc()).limit(limit)))


def my_notes(
    session: Session, *, actor: Actor, project: Project | None = None
) -> list[FeedbackNote]:
    """The caller's own notes (sent to them), newest first."""
    if actor.user_id is None:
        return []
    stmt = select(FeedbackNote).where(FeedbackNote.recipient_id == actor.user_id, shown())
    if project is not None:
        require(session, actor, Permission.PROJECT_READ, project_id=project.id)
        stmt = stmt.where(FeedbackNote.project_id == project.id)
    return list(session.scalars(stmt.order_by(FeedbackNote.sent_at.desc(), FeedbackNote.id.desc())))


def unread_count(session: Session, *, actor: Actor, project: Project) -> int:
    """The caller's notes sent and not yet acknowledged (the workbench banner)."""
    if actor.user_id is None:
        return 0
    return int(
        session.scalar(
            select(func.count(FeedbackNote.id)).where(
                FeedbackNote.project_id == project.id,
                FeedbackNote.recipient_id == actor.user_id,
                FeedbackNote.status == SENT,
                shown(),
            )
        )
        or 0
    )


def replies_json(session: Session, note: FeedbackNote) -> list[dict[str, Any]]:
    """The note's thread, oldest first (read permission: as :func:`get_note`)."""
    from labelloop.feedback.models import FeedbackReply

    rows = session.scalars(
        select(FeedbackReply).where(FeedbackReply.note_id == note.id).order_by(FeedbackReply.id)
    )
    return [
        {"id": r.id, "author": r.author, "body": r.body, "created_at": r.created_at.isoformat()}
        for r in rows
    ]


def rule_problems(session: Session, project: Project, refs: Sequence[str]) -> list[Violation]:
    """When the project has a published guideline, each rule reference must name one of
    its rules (by its first word: audits write "R4 refund vs billing"); free text is
    accepted while there is none."""
    from labelloop.guidelines.service import current

    version = current(session, project.id)
    if version is None:
        return []
    known = {r.key for r in version.rules}
    unknown = [r for r in refs if (r.split() or [""])[0] not in known]
    if not unknown:
        return []
    return [
        Violation(
            "rule_refs",
            "unknown_rule",
            f"{', '.join(unknown)}: not a rule of guideline {version.number} "
            f"({', '.join(r.key for r in version.rules)})",
        )
    ]
