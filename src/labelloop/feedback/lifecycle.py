"""Writing feedback notes and moving them through their lifecycle:
``draft → sent → acknowledged (agree | disagree) → resolved`` (see
:mod:`labelloop.feedback.models`). Every step checks its permission first, writes
nothing when a check fails, and appends a trail event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission
from labelloop.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from labelloop.escalation import service as escalation
from labelloop.feedback import templates as tpl
from labelloop.feedback.models import (
    ACKNOWLEDGED,
    DRAFT,
    RESOLVED,
    SENT,
    FeedbackItem,
    FeedbackNote,
    FeedbackReply,
)
from labelloop.feedback.service import (
    SEVERITIES,
    _event,
    catalogue,
    get_note,
    note_json,
    rule_problems,
    settings_of,
)
from labelloop.projects.models import Annotation, Item, Project
from labelloop.projects.validation import Violation
from labelloop.store.base import rowcount, utcnow

EDITABLE = ("template", "severity", "message", "fields", "rule_refs")


def _check(session: Session, project: Project, note_like: dict[str, Any]) -> list[Violation]:
    """The template exists, its required fields are filled, the severity is known."""
    templates = catalogue(session, project)
    name = note_like.get("template")
    if name not in templates:
        return [Violation("template", "unknown", f"one of {', '.join(sorted(templates))}")]
    problems = []
    if note_like.get("severity", "medium") not in SEVERITIES:
        problems.append(Violation("severity", "unknown", f"one of {', '.join(SEVERITIES)}"))
    values = {**(note_like.get("fields") or {}), **note_like}
    problems += tpl.missing(templates[str(name)], values)
    return problems


def _values(note: FeedbackNote) -> dict[str, Any]:
    return {
        "template": note.template,
        "severity": note.severity,
        "message": note.message,
        "rule_refs": note.rule_refs,
        "fields": note.fields,
    }


@dataclass(frozen=True)
class NewNote:
    recipient: str  # username
    template: str
    message: str
    items: Sequence[str] = ()  # external ids: the recipient's labels are looked up
    severity: str = "medium"
    fields: dict[str, Any] = field(default_factory=dict)
    rule_refs: Sequence[str] = ()


def create(session: Session, *, actor: Actor, project: Project, new: NewNote) -> FeedbackNote:
    """A draft written by hand (422 naming the fields when the template's are missing)."""
    from labelloop.accounts.models import Membership, User

    require(session, actor, Permission.FEEDBACK_SEND, project_id=project.id)
    values = {
        "template": new.template,
        "severity": new.severity,
        "message": new.message,
        "fields": dict(new.fields),
        "rule_refs": list(new.rule_refs),
    }
    problems = _check(session, project, values)
    problems += rule_problems(session, project, list(new.rule_refs))
    recipient = session.scalar(
        select(User.id)
        .join(Membership, Membership.user_id == User.id)
        .where(User.username == new.recipient, Membership.project_id == project.id)
    )
    if recipient is None:
        problems.append(Violation("recipient", "unknown", f"{new.recipient!r} is not a member"))
    items = _items_of(session, project, recipient, new.items, problems)
    if problems:
        raise ValidationFailed("the feedback note was not written", problems)
    assert recipient is not None
    note = FeedbackNote(
        project_id=project.id,
        recipient_id=recipient,
        status=DRAFT,
        source="manual",
        created_by=actor.name,
        found_at=utcnow(),
        items=items,
        **values,
    )
    session.add(note)
    session.flush()
    _event(
        session,
        actor,
        project.id,
        "feedback.create",
        "feedback_note",
        note.id,
        None,
        note_json(note),
    )
    return note


def _items_of(
    session: Session,
    project: Project,
    recipient: int | None,
    external_ids: Sequence[str],
    problems: list[Violation],
) -> list[FeedbackItem]:
    out = []
    for i, ext in enumerate(external_ids):
        item = session.scalar(
            select(Item).where(Item.project_id == project.id, Item.external_id == ext)
        )
        if item is None:
            problems.append(Violation(f"items[{i}]", "not_found", f"no item {ext!r}"))
            continue
        ann = session.scalar(
            select(Annotation)
            .where(Annotation.item_id == item.id, Annotation.annotator_id == recipient)
            .order_by(Annotation.id.desc())
            .limit(1)
        )
        out.append(
            FeedbackItem(
                item_id=item.id,
                annotation_id=None if ann is None else ann.id,
                given=None if ann is None else ann.value,
                reference=None,
                reference_source="manual",
            )
        )
    return out


def edit(session: Session, *, actor: Actor, note_id: int, changes: dict[str, Any]) -> FeedbackNote:
    """Change a draft's template, severity, message, fields or rule references."""
    note = get_note(session, actor=actor, note_id=note_id)
    require(session, actor, Permission.FEEDBACK_SEND, project_id=note.project_id)
    if note.status != DRAFT:
        raise Conflict(f"feedback note {note.id} was sent; only drafts change")
    problems = [
        Violation(k, "unknown", "not editable") for k in sorted(set(changes) - set(EDITABLE))
    ]
    project = session.get(Project, note.project_id)
    assert project is not None
    after = {**_values(note), **changes}
    # a draft may still lack its template's fields (they are checked when it is sent),
    # but its template, severity and rules must exist
    problems += [p for p in _check(session, project, after) if p.code != "required"]
    if "rule_refs" in changes:
        problems += rule_problems(session, project, changes["rule_refs"] or [])
    if problems:
        raise ValidationFailed("the note was not changed", problems)
    before = _values(note)
    for key, value in changes.items():
        setattr(note, key, value)
    session.flush()
    _event(
        session,
        actor,
        note.project_id,
        "feedback.edit",
        "feedback_note",
        note.id,
        before,
        _values(note),
    )
    return note


@dataclass(frozen=True)
class SendResult:
    sent: list[int]
    refused: dict[int, list[Violation]]  # drafts left as they were, with why


def _past(actor: Actor, at: datetime | None, what: str) -> datetime:
    """``at`` (a moment of the past: system actors only, for imports and the demo's
    simulated team), or now."""
    now = utcnow()
    if at is None:
        return now
    if not actor.system:
        raise PermissionDenied(f"{actor.name} may not date {what} in the past")
    if at > now:
        raise ValidationFailed(
            f"{what} cannot be in the future", [Violation("at", "future", at.isoformat())]
        )
    return at


def send(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    note_ids: Sequence[int],
    at: datetime | None = None,
) -> SendResult:
    """Send drafts (the others are refused with the template fields they lack): each
    recipient gets a notification and ``due_days`` to acknowledge. ``at`` dates the
    sending in the past (system actors only)."""
    require(session, actor, Permission.FEEDBACK_SEND, project_id=project.id)
    when = _past(actor, at, "a sending")
    notes = list(
        session.scalars(
            select(FeedbackNote).where(
                FeedbackNote.project_id == project.id, FeedbackNote.id.in_(list(note_ids))
            )
        )
    )
    missing = sorted(set(note_ids) - {n.id for n in notes})
    if missing:
        raise NotFound(f"no feedback notes {missing} in project {project.name!r}")
    now, cfg = when, settings_of(session, project)
    sent, refused = [], {}
    for note in notes:
        problems = _check(session, project, _values(note))
        if note.status != DRAFT:
            problems = [Violation("status", "not_draft", f"already {note.status}")]
        if not problems and not _claim(session, note, [DRAFT], SENT):
            problems = [Violation("status", "not_draft", f"already {note.status}")]
        if problems:
            refused[note.id] = problems
            continue
        _mark_sent(session, actor, note, now, cfg.due_days)
        sent.append(note.id)
    if sent:
        _event(
            session,
            actor,
            project.id,
            "feedback.send",
            "project",
            project.id,
            None,
            {"notes": sent},
        )
    return SendResult(sent, refused)


def _claim(session: Session, note: FeedbackNote, old: Sequence[str], new: str) -> bool:
    """Move the note from one of ``old`` to ``new`` with a compare-and-set, so two
    requests at once cannot both act on it; whether this one did."""
    done = rowcount(
        session.execute(
            update(FeedbackNote)
            .where(FeedbackNote.id == note.id, FeedbackNote.status.in_(list(old)))
            .values(status=new)
            .execution_options(synchronize_session=False)
        )
    )
    session.refresh(note)
    return bool(done)


def _mark_sent(
    session: Session,
    actor: Actor,
    note: FeedbackNote,
    now: datetime,
    days: int,
    *,
    kind: str = "feedback.sent",
) -> None:
    note.status, note.sent_at, note.sent_by = SENT, now, actor.name
    note.due_at = now + timedelta(days=days)
    escalation.notify(
        session,
        user_ids=[note.recipient_id],
        project_id=note.project_id,
        kind=kind,
        title=f"Feedback: {note.message[:120]}",
        body=note.message,
        link=f"/feedback/{note.id}",
        subject="feedback",
        subject_id=note.id,
        now=now,
    )


def acknowledge(
    session: Session,
    *,
    actor: Actor,
    note_id: int,
    agree: bool,
    reason: str | None = None,
    at: datetime | None = None,
) -> FeedbackNote:
    """The recipient acknowledges: agree, or disagree with a reason, which opens an
    adjudication case on the note's first item (when none is open on it). System actors
    may acknowledge for the recipient at a past moment ``at`` (the demo's simulated
    team)."""
    note = get_note(session, actor=actor, note_id=note_id)
    if note.recipient_id != actor.user_id and not actor.system:
        raise PermissionDenied(f"{actor.name} is not the recipient of feedback note {note.id}")
    when = _past(actor, at, "an acknowledgement")
    if note.status != SENT:
        raise Conflict(f"feedback note {note.id} is {note.status}, not waiting for you")
    reason = (reason or "").strip()
    if not agree and not reason:
        raise ValidationFailed(
            "a disagreement needs a reason",
            [Violation("reason", "required", "say why you disagree")],
        )
    if not _claim(session, note, [SENT], ACKNOWLEDGED):
        raise Conflict(f"feedback note {note.id} was acknowledged meanwhile")
    note.acknowledged_at = when
    note.response, note.response_reason = ("agree" if agree else "disagree"), reason or None
    if not agree:
        note.case_id = _dispute(session, note, reason)
        if note.case_id is None:  # nothing to rule on: the note itself waits on a lead
            escalation.track_levels(
                session,
                project_id=note.project_id,
                subject="feedback",
                subject_id=note.id,
                title=f"Feedback note {note.id} is disputed",
                link=f"/feedback/{note.id}",
                now=when,
            )
    session.flush()
    _event(
        session,
        actor,
        note.project_id,
        "feedback.acknowledge",
        "feedback_note",
        note.id,
        {"status": SENT},
        {
            "status": note.status,
            "response": note.response,
            "reason": reason or None,
            "case_id": note.case_id,
        },
    )
    return note


def _dispute(session: Session, note: FeedbackNote, reason: str) -> int | None:
    """Open (or find) the adjudication case of the note's first item."""
    from labelloop.adjudication import service as adjudication
    from labelloop.adjudication.models import OPEN, Case

    if not note.items:
        return None
    item_id = note.items[0].item_id
    open_case = session.scalar(select(Case.id).where(Case.item_id == item_id, Case.status == OPEN))
    if open_case is not None:
        return int(open_case)
    project = session.get(Project, note.project_id)
    assert project is not None
    case = adjudication.open_case(
        session,
        actor=Actor.local("feedback"),
        project=project,
        item=item_id,
        # no note id: in anonymous mode it would lead to the person who disputed
        note=f"a feedback recipient disputes the reference label: {reason}",
    )
    return case.id


def reply(session: Session, *, actor: Actor, note_id: int, body: str) -> FeedbackReply:
    """Add a message to the note's thread (its recipient, or a holder of feedback.send)."""
    note = get_note(session, actor=actor, note_id=note_id)
    if note.status == DRAFT:
        raise Conflict(f"feedback note {note.id} is a draft: its recipient cannot read replies yet")
    body = (body or "").strip()
    if not body:
        raise ValidationFailed("empty reply", [Violation("body", "required", "write something")])
    message = FeedbackReply(note_id=note.id, author_id=actor.user_id, author=actor.name, body=body)
    session.add(message)
    session.flush()
    _event(
        session,
        actor,
        note.project_id,
        "feedback.reply",
        "feedback_note",
        note.id,
        None,
        {"body": body},
    )
    if actor.user_id != note.recipient_id:
        escalation.notify(
            session,
            user_ids=[note.recipient_id],
            project_id=note.project_id,
            kind="feedback.reply",
            title=f"Reply on your feedback note {note.id}",
            body=body,
            link=f"/feedback/{note.id}",
        )
    return message


def resolve(session: Session, *, actor: Actor, note_id: int) -> FeedbackNote:
    """Close a sent or acknowledged note (``feedback.send``)."""
    note = get_note(session, actor=actor, note_id=note_id)
    require(session, actor, Permission.FEEDBACK_SEND, project_id=note.project_id)
    if note.status in (DRAFT, RESOLVED):
        raise Conflict(f"feedback note {note.id} is {note.status}")
    before = note.status
    if not _claim(session, note, [SENT, ACKNOWLEDGED], RESOLVED):
        raise Conflict(f"feedback note {note.id} was resolved meanwhile")
    note.resolved_at = utcnow()
    escalation.resolve(session, subject="feedback", subject_id=note.id, now=note.resolved_at)
    session.flush()
    _event(
        session,
        actor,
        note.project_id,
        "feedback.resolve",
        "feedback_note",
        note.id,
        {"status": before},
        {"status": RESOLVED},
    )
    return note


def resolve_disputes(session: Session, *, actor: Actor, case_id: int) -> list[int]:
    """Resolve the notes whose dispute a ruling settled (called when a case is ruled)."""
    notes = session.scalars(
        select(FeedbackNote).where(
            FeedbackNote.case_id == case_id, FeedbackNote.status == ACKNOWLEDGED
        )
    ).all()
    for note in notes:
        note.status, note.resolved_at = RESOLVED, utcnow()
        _event(
            session,
            actor,
            note.project_id,
            "feedback.resolve",
            "feedback_note",
            note.id,
            {"status": ACKNOWLEDGED},
            {"status": RESOLVED, "case_id": case_id},
        )
    return [n.id for n in notes]


def after_run_closed(session: Session, *, actor: Actor, run: Any) -> list[int]:
    """Generate the drafts of a closed audit run (:mod:`labelloop.feedback.generate`),
    record them, and send them at once when the project says so; returns their ids."""
    from labelloop.feedback.generate import drafts_from_run

    ids = drafts_from_run(session, actor=actor, run=run)
    if not ids:
        return []
    _event(
        session,
        actor,
        run.project_id,
        "feedback.generate",
        "audit_run",
        run.id,
        None,
        {"notes": ids},
    )
    project = session.get(Project, run.project_id)
    assert project is not None
    if settings_of(session, project).auto_send:
        send(session, actor=Actor.local("feedback"), project=project, note_ids=ids)
    return ids


def from_ruling(session: Session, *, ruling: Any, item: Item, now: datetime) -> list[int]:
    """A sent note to each annotator whose label differs from a ruling's (the ruling is
    a reviewed decision: no draft to review)."""
    from labelloop.audits.population import label_key

    ruled = label_key(ruling.value)
    rows = session.execute(
        select(Annotation.id, Annotation.annotator_id, Annotation.value).where(
            Annotation.item_id == item.id
        )
    ).tuples()
    system = Actor.local("feedback")
    project = session.get(Project, ruling.project_id)
    assert project is not None
    days = settings_of(session, project).due_days
    ids = []
    for annotation_id, annotator_id, value in rows:
        given = label_key(value)
        if given == ruled:
            continue
        note = FeedbackNote(
            project_id=ruling.project_id,
            recipient_id=annotator_id,
            template="boundary_case",
            severity="medium",
            status=DRAFT,
            message=f"Item {item.external_id!r} was ruled {ruled!r}: {ruling.rationale}",
            fields={"what_to_change": f"Items like this one are {ruled!r}, not {given!r}."},
            rule_refs=list(ruling.rule_refs),
            given=given,
            expected=ruled,
            source="ruling",
            source_id=ruling.id,
            found_at=ruling.created_at,
            created_by=ruling.adjudicator,
            items=[
                FeedbackItem(
                    item_id=item.id,
                    annotation_id=annotation_id,
                    given=value,
                    reference=ruling.value,
                    reference_source="ruling",
                )
            ],
        )
        session.add(note)
        session.flush()
        _mark_sent(session, system, note, now, days, kind="ruling.differs")
        ids.append(note.id)
    if ids:
        _event(
            session,
            system,
            ruling.project_id,
            "feedback.send",
            "ruling",
            ruling.id,
            None,
            {"notes": ids},
        )
    return ids
