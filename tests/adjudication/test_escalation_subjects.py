"""One escalation mechanism for everything that waits: a project's own paths (set by
leads, recorded in the trail), cases on the case path, flagged annotations handed over
to the case that opens on their item, a disputed note without items waiting on a lead,
and the lead's list of what is overdue. The clock is injected."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from labelloop.adjudication import service
from labelloop.errors import PermissionDenied, ValidationFailed
from labelloop.escalation import paths
from labelloop.escalation import service as escalation
from labelloop.escalation.models import Deadline, Notification
from labelloop.feedback import lifecycle
from labelloop.projects.models import Annotation
from labelloop.store.base import utcnow
from labelloop.trail.models import Event

from .conftest import Court, actor_of


def _deadline(court: Court, subject: str, subject_id: int) -> Deadline:
    found = escalation.deadline_of(court.session, subject, subject_id)
    assert found is not None, f"no {subject} deadline for {subject_id}"
    return found


def test_leads_set_paths_and_the_trail_records_it(court: Court) -> None:
    s, pid = court.session, court.project.id
    shown = paths.paths(s, actor=court.auditor, project_id=pid)
    assert shown["flag"] == {"levels": paths.DEFAULTS["flag"], "default": True}
    with pytest.raises(PermissionDenied):
        paths.set_path(s, actor=court.adjudicator, project_id=pid, subject="case", spec="lead:1h")
    with pytest.raises(ValidationFailed) as exc:
        paths.set_path(s, actor=court.lead, project_id=pid, subject="case", spec="lead:1h, x:2h")
    assert exc.value.violations[0].field == "levels[2]"
    paths.set_path(
        s, actor=court.lead, project_id=pid, subject="case", spec="adjudicator:1h, lead:5bd"
    )
    assert paths.paths(s, actor=court.lead, project_id=pid)["case"] == {
        "levels": "adjudicator:1h, lead:5bd",
        "default": False,
    }
    event = s.scalar(select(Event).where(Event.action == "escalation.path"))
    assert event is not None and event.after == {
        "subject": "case",
        "levels": [["adjudicator", 60], ["lead", "5bd"]],
    }
    paths.set_path(s, actor=court.lead, project_id=pid, subject="case", spec=None)
    assert paths.paths(s, actor=court.lead, project_id=pid)["case"]["default"] is True


def test_a_case_follows_the_projects_path_and_climbs_it(court: Court) -> None:
    s, pid = court.session, court.project.id
    paths.set_path(
        s, actor=court.lead, project_id=pid, subject="case", spec="adjudicator:1h, lead:5bd"
    )
    court.item("t-path", "refund", "billing", "technical")
    case = service.open_case(
        s, actor=court.adjudicator, project=court.project, item="t-path", note="which?"
    )
    d = _deadline(court, "case", case.id)
    assert (d.path, d.slas) == (["adjudicator", "lead"], [60, "5bd"])
    assert d.due_at == d.started_at + timedelta(hours=1)
    later = d.started_at + timedelta(minutes=61)
    (moved,) = escalation.escalate_due(s, actor=court.lead, now=later)
    assert (moved.owner, moved.due_at) == ("lead", paths.due_after(later, "5bd"))
    note = s.scalar(
        select(Notification).where(
            Notification.kind == "case.escalate", Notification.subject_id == case.id
        )
    )
    assert note is not None and "1h at the level before" in note.body
    # the lead lists it as overdue once its lead level passes too
    assert (
        escalation.waiting(s, actor=court.lead, project_id=pid, overdue_only=True, now=later) == []
    )
    much_later = moved.due_at + timedelta(minutes=1)
    late = escalation.waiting(
        s, actor=court.lead, project_id=pid, overdue_only=True, now=much_later
    )
    assert [x.subject_id for x in late] == [case.id]
    assert escalation.deadline_json(late[0], much_later)["overdue_minutes"] == 1
    with pytest.raises(PermissionDenied):
        escalation.waiting(s, actor=court.adjudicator, project_id=pid)


def test_a_flag_waits_until_a_case_opens_on_its_item(court: Court) -> None:
    from labelloop.workbench.service import _await_triage

    s = court.session
    item = court.item("t-flag", "refund", "refund", "refund")
    flagged = s.scalars(select(Annotation).where(Annotation.item_id == item.id)).first()
    assert flagged is not None
    _await_triage(s, court.project, flagged)
    d = _deadline(court, "flag", flagged.id)
    assert (d.owner, d.slas) == ("adjudicator", [1440, 2880, "5bd"])
    (moved,) = escalation.escalate_due(s, actor=court.lead, now=d.due_at + timedelta(seconds=30))
    assert moved.owner == "lead"
    service.open_case(
        s, actor=court.adjudicator, project=court.project, item="t-flag", note="flagged"
    )
    s.refresh(d)
    assert d.resolved_at is not None
    # a flag raised while the case is open does not start a second clock
    _await_triage(
        s,
        court.project,
        s.scalars(select(Annotation).where(Annotation.item_id == item.id)).all()[1],
    )
    assert (
        s.scalar(select(Deadline).where(Deadline.subject == "flag", Deadline.resolved_at.is_(None)))
        is None
    )


def test_a_disputed_note_without_items_waits_on_a_lead(court: Court) -> None:
    s = court.session
    recipient = court.annotators[0]
    note = lifecycle.create(
        s,
        actor=court.lead,
        project=court.project,
        new=lifecycle.NewNote(
            recipient=recipient.username,
            template="attention_slip",
            message="Several tickets were labelled in a hurry this week.",
        ),
    )
    lifecycle.send(s, actor=court.lead, project=court.project, note_ids=[note.id])
    lifecycle.acknowledge(
        s, actor=actor_of(recipient), note_id=note.id, agree=False, reason="I took my time."
    )
    d = _deadline(court, "feedback", note.id)
    assert d.owner == "lead" and d.resolved_at is None
    lifecycle.resolve(s, actor=court.lead, note_id=note.id)
    s.refresh(d)
    assert d.resolved_at is not None
    assert escalation.waiting(s, actor=court.lead, project_id=court.project.id, now=utcnow()) == []
