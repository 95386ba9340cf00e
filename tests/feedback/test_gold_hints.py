"""Gold-miss hints from the workbench: three misses of one confusion make one aggregate
hint, fewer (or right answers) none; the daily cap and the one-per-confusion rule; the
hint waits for its round before its recipient sees it; and it never names a check item
(note, items, JSON, trail event, notification). On every test backend."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.errors import NotFound
from labelloop.escalation import service as escalation
from labelloop.escalation.models import Notification
from labelloop.feedback import gold, lifecycle, service
from labelloop.feedback.models import FeedbackItem, FeedbackNote
from labelloop.guidelines import service as guidelines
from labelloop.guidelines.schemas import GuidelineDoc, RuleDoc
from labelloop.projects.models import Item, Project
from labelloop.store.base import utcnow
from labelloop.workbench import service as wb
from labelloop.workbench.schemas import SettingsIn

OPERATOR = Actor.local("test")
SCHEMA = {"task_type": "single", "labels": ["billing", "refund", "other"]}
#: a round boundary well in the past: hints of misses just after it are visible now
START = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)


@dataclass
class Checks:
    project: Project
    gold: dict[int, str]  # item id -> gold label
    annotator: Actor
    lead: Actor
    clock: list[datetime]


def _member(factories: ModuleType, project: Project, role: str) -> Actor:
    user = factories.UserFactory()
    factories.MembershipFactory(user=user, project=project, role=role)
    return Actor.for_user(user.id, user.username)


def make_checks(session: Session, factories: ModuleType, labels: list[str]) -> Checks:
    """A project whose queue serves only hidden gold checks, one per entry of ``labels``."""
    project = factories.ProjectFactory(label_schema=SCHEMA)
    annotator = _member(factories, project, "annotator")
    lead = _member(factories, project, "lead")
    wb.update_settings(
        session, actor=lead, project=project, change=SettingsIn(overlap=1, gold_rate=1.0)
    )
    golds = {}
    for label in labels:
        item = factories.ItemFactory(project=project)
        factories.GoldLabelFactory(item=item, value=label, created_at=START - timedelta(days=1))
        golds[item.id] = label
    return Checks(project, golds, annotator, lead, [START])


def answer(session: Session, c: Checks, value: str | None, *, step: float = 60) -> int:
    """The annotator takes the next check and labels it ``value`` (None: the gold label),
    ``step`` seconds after the previous one; the item id."""
    now = c.clock[-1] + timedelta(seconds=step)
    c.clock.append(now)
    work = wb.next_item(session, actor=c.annotator, project=c.project, now=now)
    assert work is not None and work.item_id in c.gold
    label = c.gold[work.item_id] if value is None else value
    wb.submit(
        session,
        actor=c.annotator,
        project=c.project,
        item_id=work.item_id,
        value=label,
        now=now + timedelta(seconds=5),
    )
    return work.item_id


def hints(session: Session, c: Checks) -> list[FeedbackNote]:
    return list(
        session.scalars(
            select(FeedbackNote)
            .where(FeedbackNote.project_id == c.project.id, FeedbackNote.source == "gold")
            .order_by(FeedbackNote.id)
        )
    )


def test_three_misses_make_one_aggregate_hint(session: Session, factories: ModuleType) -> None:
    c = make_checks(session, factories, ["billing"] * 4)
    for _ in range(2):
        answer(session, c, "refund")
    assert hints(session, c) == []  # two misses: nothing yet
    answer(session, c, "refund")
    (note,) = hints(session, c)
    assert (note.status, note.template) == ("sent", "attention_slip")
    assert note.category == "attention slip"
    assert (note.expected, note.given, note.rule_refs) == ("billing", "refund", [])
    assert note.recipient_id == c.annotator.user_id and note.items == []
    assert note.message.startswith("On 3 recent check items whose reference is ‘billing’")
    assert "you chose ‘refund’" in note.message
    # sent for its round: the round of the miss ends, then MIN_DELAY
    assert note.found_at == START and note.sent_at == START + gold.ROUND + gold.MIN_DELAY
    assert note.due_at == note.sent_at + timedelta(days=7)
    (event,) = trail.service.query(session, action="feedback.gold_hint")
    assert event.entity_type == "feedback_note" and event.entity_id == str(note.id)
    assert event.after["misses"] == 3 and event.after["items"] == []
    (bell,) = session.scalars(
        select(Notification).where(
            Notification.subject == "feedback", Notification.subject_id == note.id
        )
    )
    assert bell.user_id == c.annotator.user_id and bell.created_at == note.sent_at
    # the round is over: the recipient sees it in the inbox, the banner and the bell
    assert [n.id for n in service.my_notes(session, actor=c.annotator, project=c.project)] == [
        note.id
    ]
    assert service.unread_count(session, actor=c.annotator, project=c.project) == 1
    assert escalation.unread_count(session, actor=c.annotator) == 1
    # a fourth miss of the same confusion: the hint is not acknowledged yet
    answer(session, c, "refund")
    assert len(hints(session, c)) == 1


def test_fewer_misses_or_right_answers_make_none(session: Session, factories: ModuleType) -> None:
    c = make_checks(session, factories, ["billing"] * 7)
    for _ in range(4):
        answer(session, c, None)  # right
    answer(session, c, "refund")
    answer(session, c, "refund")
    answer(session, c, "other")  # two confusions, two and one misses
    assert hints(session, c) == []
    assert list(trail.service.query(session, action="feedback.gold_hint")) == []


def test_hints_are_capped(session: Session, factories: ModuleType) -> None:
    c = make_checks(session, factories, ["billing"] * 15)
    written = []
    for _ in range(4):  # four rounds of three misses, each hint acknowledged at once
        for _ in range(3):
            answer(session, c, "refund", step=60)
        new = [n for n in hints(session, c) if n.id not in written]
        for note in new:
            lifecycle.acknowledge(session, actor=OPERATOR, note_id=note.id, agree=True)
            written.append(note.id)
    assert len(written) == gold.HINTS_PER_DAY  # the fourth waits for tomorrow
    notes = hints(session, c)
    assert [n.message.split(" recent")[0] for n in notes] == ["On 3"] * 3
    # the next day, the next miss brings the uncovered ones (four) in one hint
    c.clock.append(c.clock[-1] + timedelta(days=1))
    answer(session, c, "refund")
    assert len(hints(session, c)) == 4
    assert hints(session, c)[-1].message.startswith("On 4 recent check items")


def test_a_hint_names_the_guideline_rule(session: Session, factories: ModuleType) -> None:
    c = make_checks(session, factories, ["billing"] * 3)
    doc = GuidelineDoc(
        title="Tickets",
        rules=(
            RuleDoc(id="R1", title="Refunds", labels=("refund",)),
            RuleDoc(id="R2", title="Invoices and charges", labels=("billing",)),
        ),
    )
    guidelines.save_draft(session, actor=OPERATOR, project=c.project, doc=doc)
    version = guidelines.publish(session, actor=OPERATOR, project=c.project, note="first")
    guidelines.acknowledge(session, actor=c.annotator, project=c.project, number=version.number)
    for _ in range(3):
        answer(session, c, "refund")
    (note,) = hints(session, c)
    assert (note.template, note.rule_refs) == ("guideline_misread", ["R2"])
    assert "Re-read rule R2 (Invoices and charges)" in note.message
    assert lifecycle._check(session, c.project, lifecycle._values(note)) == []  # template's fields


def test_a_hint_waits_for_its_round(session: Session, factories: ModuleType) -> None:
    c = make_checks(session, factories, ["billing"] * 3)
    c.clock = [utcnow() - timedelta(seconds=30)]
    for _ in range(3):
        answer(session, c, "refund", step=1)
    (note,) = hints(session, c)
    assert note.sent_at is not None and note.sent_at > utcnow() + gold.MIN_DELAY / 2
    # right after the submission nothing tells the annotator the item was a check
    assert service.my_notes(session, actor=c.annotator, project=c.project) == []
    assert service.unread_count(session, actor=c.annotator, project=c.project) == 0
    assert escalation.inbox(session, actor=c.annotator) == []
    assert escalation.unread_count(session, actor=c.annotator) == 0
    with pytest.raises(NotFound):
        service.get_note(session, actor=c.annotator, note_id=note.id)
    with pytest.raises(NotFound):
        lifecycle.acknowledge(session, actor=c.annotator, note_id=note.id, agree=True)
    # the lead sees it at once
    listed = service.list_notes(session, actor=c.lead, project=c.project)
    assert note.id in [n.id for n in listed]
    assert service.get_note(session, actor=c.lead, note_id=note.id) is note


def _keys(value: Any) -> list[str]:
    """Every key of a JSON value, nested ones too."""
    if isinstance(value, dict):
        return [str(k) for k in value] + [x for v in value.values() for x in _keys(v)]
    if isinstance(value, list):
        return [x for v in value for x in _keys(v)]
    return []


def test_a_hint_never_names_a_check_item(session: Session, factories: ModuleType) -> None:
    c = make_checks(session, factories, ["billing"] * 3)
    served = [answer(session, c, "refund") for _ in range(3)]
    (note,) = hints(session, c)
    items = session.scalars(select(Item).where(Item.id.in_(served))).all()
    hidden = [i.external_id for i in items] + [i.payload["text"] for i in items]
    (event,) = trail.service.query(session, action="feedback.gold_hint")
    (bell,) = session.scalars(
        select(Notification).where(
            Notification.subject == "feedback", Notification.subject_id == note.id
        )
    )
    shown = {
        "note": service.note_json(note),
        "event": {"before": event.before, "after": event.after},
        "bell": escalation.notification_json(bell),
    }
    text = json.dumps(shown, ensure_ascii=False)
    assert not [s for s in hidden if s in text], text
    for where, value in shown.items():
        assert not [k for k in _keys(value) if "item" in k and k != "items"], where
        assert "items" not in value or value["items"] == [], where
    assert service.note_json(note)["source_id"] is None
    linked = select(func.count(FeedbackItem.id)).where(FeedbackItem.note_id == note.id)
    assert session.scalar(linked) == 0
    # neither the submission's time: found and sent at round times
    assert {note.found_at.minute % 30, note.found_at.second} == {0}
    assert note.sent_at is not None and note.sent_at.minute % 30 == gold.MIN_DELAY.seconds // 60
