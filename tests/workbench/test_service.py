"""Workbench queues: overlap, never twice, skips, leases, hidden gold at the project's
rate, blindness, permissions and trail events (on every test backend)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.errors import Conflict, PermissionDenied, ValidationFailed
from labelloop.projects.models import Annotation, GoldLabel, Project
from labelloop.trail.models import Event
from labelloop.workbench import service as wb
from labelloop.workbench.models import Lease, OpenItem, QueueSync, Skip
from labelloop.workbench.schemas import SettingsIn, WorkItem
from labelloop.workbench.service import _gold_draw

OPERATOR = Actor.local("test")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

SCHEMA = {
    "task_type": "single",
    "labels": ["billing", "refund", "other"],
    "attributes": [{"name": "note", "type": "text"}],
    "rules": [{"when": {"label": "other"}, "require_attributes": ["note"]}],
}


@dataclass
class Team:
    project: Project
    items: list[int]
    annotators: list[Actor]
    lead: Actor
    auditor: Actor


def _actor(user: Any) -> Actor:
    return Actor.for_user(user.id, user.username)


def _member(factories: ModuleType, project: Project, role: str) -> Actor:
    user = factories.UserFactory()
    factories.MembershipFactory(user=user, project=project, role=role)
    return _actor(user)


def make_team(
    session: Session,
    factories: ModuleType,
    *,
    items: int = 4,
    annotators: int = 3,
    overlap: int = 2,
    gold_rate: float = 0.0,
) -> Team:
    project = factories.ProjectFactory(label_schema=SCHEMA)
    item_ids = [factories.ItemFactory(project=project).id for _ in range(items)]
    people = []
    for _ in range(annotators):
        people.append(_member(factories, project, "annotator"))
    lead = _member(factories, project, "lead")
    auditor = _member(factories, project, "auditor")
    wb.update_settings(
        session,
        actor=lead,
        project=project,
        change=SettingsIn(overlap=overlap, gold_rate=gold_rate),
    )
    return Team(project, item_ids, people, lead, auditor)


def label_all(session: Session, team: Team, who: Actor, now: datetime = T0) -> list[int]:
    """Label items until the queue is empty; the served item ids in order."""
    served = []
    while (work := wb.next_item(session, actor=who, project=team.project, now=now)) is not None:
        assert work.item_id not in served, "served twice"
        served.append(work.item_id)
        wb.submit(
            session,
            actor=who,
            project=team.project,
            item_id=work.item_id,
            value="billing",
            active_seconds=5.0,
            now=now + timedelta(seconds=10),
        )
        assert len(served) < 1000
    return served


def events(session: Session, action: str) -> list[Event]:
    return list(trail.service.query(session, action=action, newest_first=False))


def test_overlap_is_honoured_and_never_twice(session: Session, factories: ModuleType) -> None:
    team = make_team(session, factories, items=4, annotators=3, overlap=2)
    a, b, c = team.annotators
    assert sorted(label_all(session, team, a)) == team.items
    assert sorted(label_all(session, team, b)) == team.items
    assert label_all(session, team, c) == []  # every item has its 2 annotations
    per_item = Counter(
        session.scalars(
            select(Annotation.item_id).where(Annotation.project_id == team.project.id)
        ).all()
    )
    assert per_item == dict.fromkeys(team.items, 2)
    sources = set(
        session.scalars(select(Annotation.source).where(Annotation.project_id == team.project.id))
    )
    assert sources == {"workbench"}


def test_fewest_annotations_first(session: Session, factories: ModuleType) -> None:
    team = make_team(session, factories, items=3, annotators=3, overlap=3)
    a, b, _ = team.annotators
    first, second, third = team.items
    other = factories.UserFactory()
    factories.AnnotationFactory(item_id=first, project_id=team.project.id, annotator=other)
    factories.AnnotationFactory(item_id=second, project_id=team.project.id, annotator=other)
    factories.AnnotationFactory(
        item_id=first, project_id=team.project.id, annotator=factories.UserFactory()
    )
    # the untouched item first, then the least labeled one, then the rest
    assert label_all(session, team, a) == [third, second, first]
    # b: third and second now have one annotation (a's) + other's; first has three -> full
    assert label_all(session, team, b) == [third, second]


def test_reload_returns_the_held_item(session: Session, factories: ModuleType) -> None:
    team = make_team(session, factories)
    a = team.annotators[0]
    first = wb.next_item(session, actor=a, project=team.project, now=T0)
    again = wb.next_item(session, actor=a, project=team.project, now=T0 + timedelta(minutes=5))
    assert first is not None and again is not None and again.item_id == first.item_id
    assert session.scalar(select(func.count(Lease.id)).where(Lease.annotator_id == a.user_id)) == 1


def test_a_lease_holds_the_last_slot_until_it_expires(
    session: Session, factories: ModuleType
) -> None:
    team = make_team(session, factories, items=1, annotators=2, overlap=1)
    a, b = team.annotators
    held = wb.next_item(session, actor=a, project=team.project, now=T0)
    assert held is not None
    assert (
        wb.next_item(session, actor=b, project=team.project, now=T0 + timedelta(minutes=29)) is None
    )
    # default lease: 30 minutes; afterwards the slot is free again
    late = T0 + timedelta(minutes=31)
    taken = wb.next_item(session, actor=b, project=team.project, now=late)
    assert taken is not None and taken.item_id == held.item_id
    with pytest.raises(Conflict, match="expired"):
        wb.submit(
            session, actor=a, project=team.project, item_id=held.item_id, value="refund", now=late
        )
    wb.submit(
        session, actor=b, project=team.project, item_id=held.item_id, value="refund", now=late
    )
    assert (
        session.scalar(select(func.count(Annotation.id)).where(Annotation.item_id == held.item_id))
        == 1
    )


def test_an_expired_lease_may_still_be_submitted_while_a_slot_is_open(
    session: Session, factories: ModuleType
) -> None:
    team = make_team(session, factories, items=1, annotators=1, overlap=1)
    (a,) = team.annotators
    held = wb.next_item(session, actor=a, project=team.project, now=T0)
    assert held is not None
    late = T0 + timedelta(hours=2)
    ann = wb.submit(
        session,
        actor=a,
        project=team.project,
        item_id=held.item_id,
        value="billing",
        active_seconds=99_999.0,
        now=late,
    )
    assert ann.started_at == T0 and ann.submitted_at == late
    # the server's measure: the time since the item was served, at most the lease (30 min)
    assert ann.active_seconds == 1800.0


def test_skip_is_recorded_and_excludes_the_item(session: Session, factories: ModuleType) -> None:
    team = make_team(session, factories, items=2, annotators=1, overlap=1)
    (a,) = team.annotators
    held = wb.next_item(session, actor=a, project=team.project, now=T0)
    assert held is not None
    with pytest.raises(ValidationFailed) as exc:
        wb.skip(session, actor=a, project=team.project, item_id=held.item_id, reason="  ", now=T0)
    assert exc.value.violations[0].field == "reason"
    assert session.scalar(select(func.count(Skip.id))) == 0
    wb.skip(
        session,
        actor=a,
        project=team.project,
        item_id=held.item_id,
        reason="text is cut off",
        now=T0,
    )
    (record,) = session.scalars(select(Skip).where(Skip.annotator_id == a.user_id)).all()
    assert (record.item_id, record.reason) == (held.item_id, "text is cut off")
    (event,) = events(session, "workbench.skip")
    assert event.entity_id == str(held.item_id) and event.after["reason"] == "text is cut off"
    rest = label_all(session, team, a)
    assert held.item_id not in rest and len(rest) == 1
    status = wb.queue_status(session, actor=a, project=team.project, now=T0)
    assert (status.done_total, status.skipped, status.remaining) == (1, 1, 0)


def test_invalid_submission_writes_nothing_and_keeps_the_lease(
    session: Session, factories: ModuleType
) -> None:
    team = make_team(session, factories)
    a = team.annotators[0]
    held = wb.next_item(session, actor=a, project=team.project, now=T0)
    assert held is not None
    before = session.scalar(select(func.count(Event.id)))
    with pytest.raises(ValidationFailed) as exc:
        wb.submit(
            session, actor=a, project=team.project, item_id=held.item_id, value="other", now=T0
        )
    assert [v.field for v in exc.value.violations] == ["attributes.note"]
    with pytest.raises(ValidationFailed) as exc:
        wb.submit(
            session, actor=a, project=team.project, item_id=held.item_id, value="nope", now=T0
        )
    assert exc.value.violations[0].code == "unknown_label"
    assert (
        session.scalar(select(func.count(Annotation.id)).where(Annotation.item_id == held.item_id))
        == 0
    )
    assert session.scalar(select(func.count(Event.id))) == before
    again = wb.next_item(session, actor=a, project=team.project, now=T0)
    assert again is not None and again.item_id == held.item_id
    ann = wb.submit(
        session,
        actor=a,
        project=team.project,
        item_id=held.item_id,
        value="other",
        attributes={"note": "asks about a partnership"},
        now=T0,
    )
    assert ann.attributes == {"note": "asks about a partnership"} and ann.source == "workbench"


def test_uncertain_flag_needs_a_reason_and_is_stored(
    session: Session, factories: ModuleType
) -> None:
    team = make_team(session, factories)
    a = team.annotators[0]
    held = wb.next_item(session, actor=a, project=team.project, now=T0)
    assert held is not None
    with pytest.raises(ValidationFailed) as exc:
        wb.submit(
            session,
            actor=a,
            project=team.project,
            item_id=held.item_id,
            value="refund",
            uncertain=True,
            uncertain_reason="",
            now=T0,
        )
    assert exc.value.violations[0].field == "uncertain_reason"
    assert (
        session.scalar(select(func.count(Annotation.id)).where(Annotation.item_id == held.item_id))
        == 0
    )
    ann = wb.submit(
        session,
        actor=a,
        project=team.project,
        item_id=held.item_id,
        value="refund",
        uncertain=True,
        uncertain_reason="could be billing too",
        now=T0,
    )
    assert ann.flags == [
        {
            "code": "uncertain",
            "field": "value",
            "message": "could be billing too",
            "source": "annotator",
        }
    ]
    (event,) = events(session, "annotation.flag")
    assert event.entity_id == str(ann.id) and event.after["flags"] == ann.flags
    assert session.scalar(select(func.count(Lease.id)).where(Lease.annotator_id == a.user_id)) == 0


def test_submit_needs_the_lease(session: Session, factories: ModuleType) -> None:
    team = make_team(session, factories)
    a, b, _ = team.annotators
    held = wb.next_item(session, actor=a, project=team.project, now=T0)
    assert held is not None
    with pytest.raises(Conflict, match="not in your queue"):
        wb.submit(
            session, actor=b, project=team.project, item_id=held.item_id, value="refund", now=T0
        )
    with pytest.raises(Conflict, match="not in your queue"):
        wb.skip(session, actor=b, project=team.project, item_id=held.item_id, reason="x", now=T0)
    wb.submit(session, actor=a, project=team.project, item_id=held.item_id, value="refund", now=T0)
    with pytest.raises(Conflict):  # the lease ended with the submission
        wb.submit(
            session, actor=a, project=team.project, item_id=held.item_id, value="billing", now=T0
        )


def test_gold_is_mixed_in_at_the_rate_deterministically(
    session: Session, factories: ModuleType
) -> None:
    rate = 0.25
    team = make_team(session, factories, items=80, annotators=1, overlap=1, gold_rate=rate)
    (a,) = team.annotators
    gold = set(team.items[:40])
    for item_id in gold:
        factories.GoldLabelFactory(item_id=item_id, project_id=team.project.id, value="refund")
    served = label_all(session, team, a)
    # every regular item once; gold only comes by the draw, so the queue ends at the
    # first draw for a regular item once none is left (or when every item is done)
    assert sorted(i for i in served if i not in gold) == team.items[40:]
    ended = _gold_draw(team.project.id, a.user_id or 0, len(served))
    assert ended >= rate or gold <= set(served)
    got = [item_id in gold for item_id in served]
    expected = [_gold_draw(team.project.id, a.user_id or 0, p) < rate for p in range(len(got))]
    assert got == expected
    share = sum(got) / len(got)
    assert 0.1 <= share <= 0.4, share  # 0.25 in expectation


def test_gold_rate_zero_never_serves_gold_and_gold_never_counts_as_open(
    session: Session, factories: ModuleType
) -> None:
    team = make_team(session, factories, items=6, annotators=1, overlap=1, gold_rate=0.0)
    (a,) = team.annotators
    for item_id in team.items[:2]:
        factories.GoldLabelFactory(item_id=item_id, project_id=team.project.id, value="refund")
    assert wb.queue_status(session, actor=a, project=team.project, now=T0).remaining == 4
    assert sorted(label_all(session, team, a)) == team.items[2:]


def test_gold_rate_one_serves_gold_first(session: Session, factories: ModuleType) -> None:
    team = make_team(session, factories, items=4, annotators=1, overlap=1, gold_rate=1.0)
    (a,) = team.annotators
    factories.GoldLabelFactory(item_id=team.items[3], project_id=team.project.id, value="refund")
    held = wb.next_item(session, actor=a, project=team.project, now=T0)
    assert held is not None and held.item_id == team.items[3]
    lease = session.scalars(select(Lease).where(Lease.item_id == held.item_id)).one()
    assert lease.is_gold  # the lease itself records that it serves a hidden check
    served = label_all(session, team, a)
    assert served[0] == team.items[3] and sorted(served) == team.items


def test_serving_an_item_writes_no_trail_event(session: Session, factories: ModuleType) -> None:
    """A GET of the workbench leases an item; the lease is its own record (and the
    annotation keeps when it began), so only submissions, skips and flags are events."""
    team = make_team(session, factories, items=2, annotators=1, overlap=1)
    (a,) = team.annotators
    before = session.scalar(select(func.count()).select_from(Event))
    held = wb.next_item(session, actor=a, project=team.project, now=T0)
    assert held is not None
    assert wb.next_item(session, actor=a, project=team.project, now=T0) == held
    assert session.scalar(select(func.count()).select_from(Event)) == before
    ann = wb.submit(
        session, actor=a, project=team.project, item_id=held.item_id, value="billing", now=T0
    )
    assert ann.started_at == held.leased_at
    (created,) = events(session, "annotation.create")
    assert created.after["path"] == "queue" and created.after["source"] == "workbench"


def test_the_item_view_is_blind(session: Session, factories: ModuleType) -> None:
    team = make_team(session, factories, items=1, annotators=2, overlap=2)
    a, b = team.annotators
    item_id = team.items[0]
    factories.GoldLabelFactory(item_id=item_id, project_id=team.project.id, value="refund")
    factories.PredictionFactory(item_id=item_id, project_id=team.project.id, value="refund")
    assert label_all(session, team, a) == []  # gold items come only through the gold draw
    session.execute(GoldLabel.__table__.delete().where(GoldLabel.item_id == item_id))
    served = wb.next_item(session, actor=a, project=team.project, now=T0)
    assert served is not None
    assert {f.name for f in fields(WorkItem)} == {
        "item_id",
        "payload",
        "metadata",
        "segments",
        "leased_at",
        "expires_at",
    }
    wb.submit(session, actor=a, project=team.project, item_id=item_id, value="billing", now=T0)
    seen_by_b = wb.next_item(session, actor=b, project=team.project, now=T0)
    assert seen_by_b is not None and "billing" not in repr(seen_by_b)


def test_only_annotators_and_users_get_work(session: Session, factories: ModuleType) -> None:
    team = make_team(session, factories)
    outsider = _actor(factories.UserFactory())
    for who in (team.auditor, outsider):
        with pytest.raises(PermissionDenied):
            wb.next_item(session, actor=who, project=team.project, now=T0)
        with pytest.raises(PermissionDenied):
            wb.skip(session, actor=who, project=team.project, item_id=team.items[0], reason="x")
        with pytest.raises(PermissionDenied):
            wb.submit(
                session, actor=who, project=team.project, item_id=team.items[0], value="refund"
            )
        with pytest.raises(PermissionDenied):
            wb.queue_status(session, actor=who, project=team.project)
        with pytest.raises(PermissionDenied):
            wb.work_view(session, actor=who, project=team.project)
    with pytest.raises(ValidationFailed, match="not a user"):
        wb.next_item(session, actor=OPERATOR, project=team.project, now=T0)
    with pytest.raises(PermissionDenied):
        wb.update_settings(
            session, actor=team.annotators[0], project=team.project, change=SettingsIn(overlap=5)
        )


def test_settings_defaults_updates_and_trail(session: Session, factories: ModuleType) -> None:
    project = factories.ProjectFactory()
    settings = wb.get_settings(session, project)
    assert (settings.overlap, settings.gold_rate, settings.lease_minutes) == (3, 0.1, 30)
    out = wb.update_settings(
        session, actor=OPERATOR, project=project, change=SettingsIn(gold_rate=0.2)
    )
    assert (out.overlap, out.gold_rate) == (3, 0.2)
    (event,) = [
        e for e in events(session, "workbench.settings.update") if e.project_id == project.id
    ]
    assert event.before["gold_rate"] == 0.1 and event.after["gold_rate"] == 0.2
    wb.update_settings(session, actor=OPERATOR, project=project, change=SettingsIn(gold_rate=0.2))
    assert (
        len([e for e in events(session, "workbench.settings.update") if e.project_id == project.id])
        == 1
    )


def test_queue_status_counts(session: Session, factories: ModuleType) -> None:
    team = make_team(session, factories, items=5, annotators=2, overlap=1)
    a, b = team.annotators
    assert wb.queue_status(session, actor=a, project=team.project, now=T0).remaining == 5
    held = wb.next_item(session, actor=b, project=team.project, now=T0)
    assert held is not None
    # b's lease holds one item's only slot
    assert wb.queue_status(session, actor=a, project=team.project, now=T0).remaining == 4
    wb.submit(session, actor=b, project=team.project, item_id=held.item_id, value="refund", now=T0)
    status = wb.queue_status(session, actor=b, project=team.project, now=T0 + timedelta(hours=1))
    assert (status.done_today, status.done_total, status.remaining, status.overlap) == (1, 1, 4, 1)
    tomorrow = wb.queue_status(session, actor=b, project=team.project, now=T0 + timedelta(days=1))
    assert tomorrow.done_today == 0 and tomorrow.done_total == 1


def test_work_view_is_next_item_then_queue_status(session: Session, factories: ModuleType) -> None:
    """The page's one call serves and counts as the two calls do, and keeps the lease."""
    team = make_team(session, factories, items=5, annotators=2, overlap=1)
    a, b = team.annotators
    assert wb.next_item(session, actor=b, project=team.project, now=T0) is not None
    work, status = wb.work_view(session, actor=a, project=team.project, now=T0)
    assert work is not None
    assert status == wb.queue_status(session, actor=a, project=team.project, now=T0)
    assert status.remaining == 4  # b holds one item's only slot
    again, _ = wb.work_view(session, actor=a, project=team.project, now=T0 + timedelta(minutes=1))
    assert again is not None and again.item_id == work.item_id
    assert wb.next_item(session, actor=a, project=team.project, now=T0).item_id == work.item_id


def test_the_open_items_index_follows_writes_made_elsewhere(
    session: Session, factories: ModuleType
) -> None:
    team = make_team(session, factories, items=2, annotators=1, overlap=2)
    (a,) = team.annotators
    first, second = team.items
    assert wb.queue_status(session, actor=a, project=team.project, now=T0).remaining == 2
    # written by an import or the API after the index was built
    late = factories.ItemFactory(project=team.project).id
    for _ in range(2):
        factories.AnnotationFactory(
            item_id=first, project_id=team.project.id, annotator=factories.UserFactory()
        )
    assert wb.queue_status(session, actor=a, project=team.project, now=T0).remaining == 2
    assert label_all(session, team, a) == [second, late]
    # a larger overlap opens the full item again (the index is rebuilt)
    wb.update_settings(session, actor=team.lead, project=team.project, change=SettingsIn(overlap=3))
    assert label_all(session, team, a) == [first]
    rows = session.scalars(
        select(OpenItem.item_id).where(OpenItem.project_id == team.project.id)
    ).all()
    assert sorted(rows) == [second, late]  # below 3 annotators; `first` now has 3


def test_an_item_committed_late_is_found(session: Session, factories: ModuleType) -> None:
    """PostgreSQL can commit an item after one with a higher id; the item count shows it."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite commits writers one at a time, in id order")
    team = make_team(session, factories, items=3, annotators=1, overlap=1)
    (a,) = team.annotators
    wb.queue_status(session, actor=a, project=team.project, now=T0)
    hidden = team.items[1]
    session.execute(delete(OpenItem).where(OpenItem.item_id == hidden))
    state = session.get(QueueSync, team.project.id)
    assert state is not None
    state.item_count -= 1
    session.flush()
    wb.sync_open_items(session, team.project, 1)
    assert session.get(OpenItem, hidden) is None  # checked at most once a minute
    state.checked_at -= timedelta(minutes=2)
    session.flush()
    wb.sync_open_items(session, team.project, 1)
    assert session.get(OpenItem, hidden) is not None


def test_a_recording_cannot_replace_a_queue_vote(session: Session, factories: ModuleType) -> None:
    """A lead recording an annotation as given for an annotator, without its own
    external_key, would overwrite the vote the annotator cast in the queue: 409."""
    from labelloop.projects import service as projects

    team = make_team(session, factories, items=1, annotators=1, overlap=1)
    (a,) = team.annotators
    held = wb.next_item(session, actor=a, project=team.project, now=T0)
    assert held is not None
    vote = wb.submit(session, actor=a, project=team.project, item_id=held.item_id, value="billing")
    assert a.user_id is not None
    with pytest.raises(Conflict, match="cannot replace that vote"):
        projects.submit_annotation(
            session,
            actor=team.lead,
            project=team.project,
            item_id=held.item_id,
            annotator_id=a.user_id,
            value="refund",
        )
    other = projects.submit_annotation(
        session,
        actor=team.lead,
        project=team.project,
        item_id=held.item_id,
        annotator_id=a.user_id,
        value="refund",
        external_key="tool-42",
    )
    session.refresh(vote)
    assert other.id != vote.id and vote.value == "billing" and vote.source == "workbench"
