"""The worker's case jobs on a real committed database: detection by two workers at
once opens each case once; a case past its SLA climbs one level within the next pass
(adjudicator → lead → owner), with a trail event and a notification, once."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from labelloop import worker
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import Membership, User
from labelloop.adjudication import service
from labelloop.adjudication.models import Case
from labelloop.escalation.models import Deadline, Notification
from labelloop.guidelines import service as guidelines
from labelloop.guidelines.schemas import parse_document
from labelloop.projects import service as projects
from labelloop.projects.models import Project
from labelloop.projects.schemas import LabelSchema
from labelloop.settings import Settings
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.store.base import utcnow
from labelloop.trail.models import Event
from tests.guidelines._data import EXAMPLE, INTENT

OPERATOR = Actor.local("test")
LABELS = ["refund", "billing", "technical"]


def _project(url: str, n_disputed: int = 30) -> int:
    """A project with unanimous items and ``n_disputed`` three-way splits; a lead and an
    adjudicator; the example guideline published by the lead."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            p = projects.create_project(
                s, actor=OPERATOR, name="tickets", schema=LabelSchema.from_dict(INTENT)
            )
            people = [User(username=f"u{i}") for i in range(3)]
            lead, judge = User(username="lead"), User(username="judge")
            s.add_all([*people, lead, judge])
            s.flush()
            s.add_all([Membership(user_id=u.id, project_id=p.id, role="annotator") for u in people])
            s.add(Membership(user_id=lead.id, project_id=p.id, role="lead"))
            s.add(Membership(user_id=judge.id, project_id=p.id, role="adjudicator"))
            for n in range(1, 21):
                projects.add_item(
                    s, actor=OPERATOR, project=p, external_id=f"ticket-{n:04d}", payload={}
                )
            for n in range(60 + n_disputed):
                item = projects.add_item(
                    s, actor=OPERATOR, project=p, external_id=f"t{n}", payload={}
                )
                for i, u in enumerate(people):
                    label = LABELS[n % 3] if n < 60 else LABELS[i]
                    projects.submit_annotation(
                        s,
                        actor=OPERATOR,
                        project=p,
                        item_id=item.id,
                        annotator_id=u.id,
                        value=label,
                    )
            doc = parse_document(EXAMPLE.read_text(encoding="utf-8"), source="guideline.md")
            lead_actor = Actor.for_user(lead.id, lead.username)
            guidelines.save_draft(s, actor=lead_actor, project=p, doc=doc)
            guidelines.publish(s, actor=lead_actor, project=p, note="first")
            return p.id
    finally:
        engine.dispose()


def test_two_workers_detect_each_case_once(fresh_database_url: str, backend: str) -> None:
    project_id = _project(fresh_database_url)
    settings = Settings(database_url=fresh_database_url)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def work() -> None:
        barrier.wait(10)
        try:
            results.append(worker.detect_cases(settings))
        except BaseException as exc:  # pragma: no cover - reported below
            results.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(r, list) for r in results), results
    # neither failed (the loser once hit the settings row's primary key on PostgreSQL)
    assert not [j for r in results for j in r if "failed" in j.message], results
    engine = make_engine(fresh_database_url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            cases = s.scalars(select(Case).where(Case.project_id == project_id)).all()
            assert len(cases) == 30
            assert len({c.item_id for c in cases}) == 30
            deadlines = s.scalar(select(func.count(Deadline.id)))
            assert deadlines == 30
            opened = [
                len(e.after["opened"])
                for e in s.scalars(select(Event).where(Event.action == "case.detect"))
            ]
            assert sorted(opened)[-1] == 30 and sum(opened) == 30, opened
    finally:
        engine.dispose()


def test_a_late_case_climbs_once_per_sla(fresh_database_url: str) -> None:
    project_id = _project(fresh_database_url, n_disputed=1)
    settings = Settings(database_url=fresh_database_url)
    engine = make_engine(fresh_database_url)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as s:
            project = s.get(Project, project_id)
            assert project is not None
            service.update_settings(s, actor=OPERATOR, project=project, changes={"sla_hours": 1})
        worker.detect_cases(settings)
        with session_scope(factory) as s:
            d = s.scalar(select(Deadline))
            assert d is not None
            due = d.due_at
        assert worker.escalate(settings, now=due - timedelta(seconds=1)) == []
        # two workers at the same pass: one moves it
        moved = worker.escalate(settings, now=due + timedelta(seconds=30))
        again = worker.escalate(settings, now=due + timedelta(seconds=31))
        assert [(m.level, m.owner, m.notified) for m in moved] == [(1, "lead", 1)]
        assert again == []
        top = worker.escalate(settings, now=due + timedelta(hours=1, seconds=30))
        assert [(m.level, m.owner) for m in top] == [(2, "owner")]
        assert worker.escalate(settings, now=due + timedelta(hours=5)) == []  # the top
        with session_scope(factory) as s:
            events = s.scalars(select(Event).where(Event.action == "case.escalate")).all()
            assert [e.after["owner"] for e in events] == ["lead", "owner"]
            lead = s.scalar(select(User.id).where(User.username == "lead"))
            told = s.scalars(
                select(Notification.user_id).where(Notification.kind == "case.escalate")
            ).all()
            assert told == [lead, lead]  # the lead published the guideline: the owner
            assert s.scalar(select(Deadline.level)) == 2
    finally:
        engine.dispose()


def test_digest_and_detection_cadence(fresh_database_url: str) -> None:
    _project(fresh_database_url, n_disputed=2)
    settings = Settings(database_url=fresh_database_url)
    now = utcnow()
    assert [j.message.split(" (")[0] for j in worker.detect_cases(settings, now=now)] == [
        "2 new cases"
    ]
    assert worker.detect_cases(settings, now=now + timedelta(minutes=5)) == []  # not due
    later = worker.detect_cases(settings, now=now + timedelta(minutes=61))
    assert [j.message.split(" (")[0] for j in later] == ["0 new cases"]
    assert worker.send_digests(settings) == []
