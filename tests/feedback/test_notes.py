"""Feedback notes: drafts generated when an audit run closes (one per annotator ×
category × confusion, positive notes for significantly good work), templates' required
fields, sending, acknowledging (a disagreement opens a case), replies, resolution,
notes from rulings, and permissions."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.adjudication import rulings
from labelloop.adjudication.models import Case
from labelloop.audits.models import AuditReview, AuditRun, AuditUnit
from labelloop.demo import audits as demo_audits
from labelloop.demo.builder import build_demo
from labelloop.demo.simulate import simulate
from labelloop.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from labelloop.escalation.models import Notification
from labelloop.feedback import lifecycle, service
from labelloop.feedback.models import FeedbackNote
from labelloop.projects.service import get_project
from labelloop.trail.models import Event

OPERATOR = Actor.local("test")
N = 400


@pytest.fixture
def audited(session: Session):  # type: ignore[no-untyped-def]
    summary = build_demo(session, actor=OPERATOR, seed=11, n_items=N)
    project = get_project(session, summary.project)
    demo_audits.run_cycles(
        session, actor=OPERATOR, project=project, data=simulate(11, N), cycles=1, feedback=False
    )
    return project


def _user(session: Session, username: str) -> Actor:
    user = session.scalar(select(User).where(User.username == username))
    assert user is not None
    return Actor.for_user(user.id, user.username)


def test_closing_a_run_drafts_one_note_per_confusion(session: Session, audited) -> None:  # type: ignore[no-untyped-def]
    run = session.scalar(select(AuditRun).where(AuditRun.project_id == audited.id))
    assert run is not None and run.status == "closed"
    notes = session.scalars(
        select(FeedbackNote).where(FeedbackNote.source == "audit", FeedbackNote.source_id == run.id)
    ).all()
    assert notes and all(n.status == "draft" for n in notes)
    reviews = session.execute(
        select(
            AuditUnit.id,
            AuditUnit.annotator_id,
            AuditReview.verdict,
            AuditReview.error_category,
            AuditUnit.snapshot,
            AuditReview.corrected_value,
        )
        .join(AuditReview, AuditReview.unit_id == AuditUnit.id)
        .where(AuditUnit.run_id == run.id)
        .order_by(AuditUnit.id, AuditReview.id)
    ).all()
    first = {}  # a double-reviewed unit counts with its first review
    for unit, *rest in reviews:
        first.setdefault(unit, rest)
    expected = Counter(
        (a, c or "unclassified", s["value"], v)
        for a, verdict, c, s, v in first.values()
        if verdict == "incorrect" and v is not None
    )
    confusion_notes = [n for n in notes if n.template != "positive"]
    got = Counter(
        (n.recipient_id, n.category, n.given, n.expected) for n in confusion_notes for _ in n.items
    )
    assert got == expected  # every finding is in exactly one note, grouped as promised
    assert len({(n.recipient_id, n.category, n.given, n.expected) for n in confusion_notes}) == len(
        confusion_notes
    )
    generated = session.scalars(select(Event).where(Event.action == "feedback.generate")).all()
    assert [sorted(e.after["notes"]) for e in generated] == [sorted(n.id for n in notes)]


def test_send_checks_the_template_and_tells_the_recipient(session: Session, audited) -> None:  # type: ignore[no-untyped-def]
    drafts = service.list_notes(session, actor=OPERATOR, project=audited, status="draft")
    misread = next(
        (n for n in drafts if n.template == "guideline_misread" and not n.rule_refs), None
    )
    if misread is not None:  # a misread without a rule reference cannot go out as it is
        result = lifecycle.send(session, actor=OPERATOR, project=audited, note_ids=[misread.id])
        assert [v.field for v in result.refused[misread.id]] == ["rule_refs"]
        lifecycle.edit(session, actor=OPERATOR, note_id=misread.id, changes={"rule_refs": ["R4"]})
    result = lifecycle.send(
        session, actor=OPERATOR, project=audited, note_ids=[n.id for n in drafts]
    )
    assert not result.refused and len(result.sent) == len(drafts)
    told = session.scalar(
        select(func.count(Notification.id)).where(Notification.kind == "feedback.sent")
    )
    assert told == len(drafts)
    with pytest.raises(Conflict):
        lifecycle.edit(session, actor=OPERATOR, note_id=drafts[0].id, changes={"message": "x"})


def test_acknowledge_agree_disagree_and_resolve(session: Session, audited) -> None:  # type: ignore[no-untyped-def]
    drafts = [
        n
        for n in service.list_notes(session, actor=OPERATOR, project=audited, status="draft")
        if n.items
    ]
    lifecycle.send(session, actor=OPERATOR, project=audited, note_ids=[n.id for n in drafts[:2]])
    first, second = drafts[0], drafts[1]
    me = Actor.for_user(first.recipient_id, "recipient")
    someone_else = _user(session, "demo.auditor")
    with pytest.raises(NotFound):  # another's note answers as no note at all
        lifecycle.acknowledge(session, actor=someone_else, note_id=first.id, agree=True)
    with pytest.raises(ValidationFailed) as err:
        lifecycle.acknowledge(session, actor=me, note_id=first.id, agree=False, reason=" ")
    assert err.value.violations[0].field == "reason"
    lifecycle.acknowledge(session, actor=me, note_id=first.id, agree=True)
    with pytest.raises(Conflict):
        lifecycle.acknowledge(session, actor=me, note_id=first.id, agree=True)
    lifecycle.reply(session, actor=me, note_id=first.id, body="Thanks, makes sense.")
    lifecycle.resolve(session, actor=OPERATOR, note_id=first.id)
    assert first.status == "resolved"
    other = Actor.for_user(second.recipient_id, "recipient2")
    lifecycle.acknowledge(
        session,
        actor=other,
        note_id=second.id,
        agree=False,
        reason="The ticket asks for money back.",
    )
    assert second.case_id is not None
    case = session.get(Case, second.case_id)
    assert case is not None and case.item_id == second.items[0].item_id and case.status == "open"
    rulings.rule(
        session,
        actor=OPERATOR,
        case_id=case.id,
        given=rulings.RulingInput(
            label=second.items[0].reference, rationale="The reviewer was right: R4 says so."
        ),
    )
    session.refresh(second)
    assert second.status == "resolved"


def test_only_leads_read_drafts_and_annotators_see_their_own(session: Session, audited) -> None:  # type: ignore[no-untyped-def]
    drafts = service.list_notes(session, actor=OPERATOR, project=audited, status="draft")
    note = drafts[0]
    me = Actor.for_user(note.recipient_id, "recipient")
    with pytest.raises(NotFound):
        service.get_note(session, actor=me, note_id=note.id)  # a draft is not theirs yet
    with pytest.raises(PermissionDenied):
        service.list_notes(session, actor=me, project=audited)
    lifecycle.send(session, actor=OPERATOR, project=audited, note_ids=[note.id])
    assert service.get_note(session, actor=me, note_id=note.id) is note
    assert note in service.my_notes(session, actor=me, project=audited)
    assert service.unread_count(session, actor=me, project=audited) >= 1


def test_templates_required_fields(session: Session, audited) -> None:  # type: ignore[no-untyped-def]
    new = lifecycle.NewNote(recipient="lucas.martin", template="positive", message="Great week.")
    with pytest.raises(ValidationFailed) as err:
        lifecycle.create(session, actor=OPERATOR, project=audited, new=new)
    assert [v.field for v in err.value.violations] == ["what_was_right"]
    service.update_settings(
        session,
        actor=OPERATOR,
        project=audited,
        templates=[
            {"name": "tone_misread", "title": "Tone misread", "required": ["message", "context"]}
        ],
    )
    custom = lifecycle.NewNote(
        recipient="lucas.martin",
        template="tone_misread",
        message="Sarcasm.",
        items=("tkt-00001",),
        fields={"context": "The customer is joking."},
    )
    note = lifecycle.create(session, actor=OPERATOR, project=audited, new=custom)
    assert note.items[0].given is not None or note.items[0].annotation_id is None
    with pytest.raises(ValidationFailed) as err:
        service.update_settings(
            session, actor=OPERATOR, project=audited, templates=[{"name": "positive"}]
        )
    assert err.value.violations[0].field == "templates[0].name"


def test_a_ruling_sends_notes_to_those_who_differed(session: Session, audited) -> None:  # type: ignore[no-untyped-def]
    case = session.scalar(select(Case).where(Case.project_id == audited.id, Case.status == "open"))
    assert case is not None
    ruling = rulings.rule(
        session,
        actor=OPERATOR,
        case_id=case.id,
        given=rulings.RulingInput(
            label="refund", rationale="Money back for a duplicate charge: R4."
        ),
    )
    notes = session.scalars(
        select(FeedbackNote).where(
            FeedbackNote.source_id == ruling.id, FeedbackNote.source == "ruling"
        )
    ).all()
    assert all(n.status == "sent" and n.expected == "refund" and n.given != "refund" for n in notes)
    told = session.scalars(
        select(Notification.subject_id).where(Notification.kind == "ruling.differs")
    ).all()
    assert {n.id for n in notes} <= set(told)


def test_rule_references_name_rules_of_the_guideline_at_every_door(
    session: Session, audited
) -> None:  # type: ignore[no-untyped-def]
    new = lifecycle.NewNote(
        recipient="lucas.martin", template="guideline_misread", message="R4.", rule_refs=("R99",)
    )
    with pytest.raises(ValidationFailed) as err:
        lifecycle.create(session, actor=OPERATOR, project=audited, new=new)
    assert [v.field for v in err.value.violations] == ["rule_refs"]
    ok = lifecycle.create(
        session,
        actor=OPERATOR,
        project=audited,
        new=lifecycle.NewNote(
            recipient="lucas.martin",
            template="guideline_misread",
            message="R4.",
            rule_refs=("R4 refund vs billing",),
        ),
    )
    for changes in ({"rule_refs": ["X1"]}, {"template": "nope"}, {"severity": "huge"}):
        with pytest.raises(ValidationFailed):
            lifecycle.edit(session, actor=OPERATOR, note_id=ok.id, changes=changes)
    lifecycle.edit(
        session, actor=OPERATOR, note_id=ok.id, changes={"message": ""}
    )  # a draft may lack fields
