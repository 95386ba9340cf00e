"""Two leads publishing at once, on a real committed database: one version, one 409.
Without the per-project lock both would rename the same draft (PostgreSQL)."""

from __future__ import annotations

import threading
from typing import Any

from labelloop.accounts.actor import Actor
from labelloop.errors import Conflict
from labelloop.guidelines import service
from labelloop.guidelines.schemas import parse_document
from labelloop.projects import service as projects
from labelloop.projects.models import Project
from labelloop.projects.schemas import LabelSchema
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.trail.models import Event
from tests.guidelines._data import EXAMPLE, INTENT

OPERATOR = Actor.local("test")


def test_two_publishes_at_once_make_one_version(fresh_database_url: str, backend: str) -> None:
    engine = make_engine(fresh_database_url)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as s:
            p = projects.create_project(
                s, actor=OPERATOR, name="tickets", schema=LabelSchema.from_dict(INTENT)
            )
            for n in range(1, 21):
                projects.add_item(
                    s, actor=OPERATOR, project=p, external_id=f"ticket-{n:04d}", payload={}
                )
            doc = parse_document(EXAMPLE.read_text(encoding="utf-8"), source="guideline.md")
            service.save_draft(s, actor=OPERATOR, project=p, doc=doc)
            project_id = p.id
        # SQLite takes its write lock at a transaction's first statement: the second
        # publish waits there; PostgreSQL transactions meet here, then race
        barrier = threading.Barrier(2) if backend == "postgresql" else None
        outcomes: list[Any] = []

        def publish(note: str) -> None:
            try:
                with session_scope(factory) as s:
                    project = s.get(Project, project_id)
                    assert project is not None
                    if barrier is not None:
                        barrier.wait(10)
                    v = service.publish(s, actor=OPERATOR, project=project, note=note)
                    outcomes.append(v.number)
            except Conflict as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=publish, args=(f"lead {i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(map(str, outcomes))[0] == "1.0", outcomes
        assert sum(isinstance(o, Conflict) for o in outcomes) == 1, outcomes
        with session_scope(factory) as s:
            p2 = s.get(Project, project_id)
            assert p2 is not None
            versions = [v.number for v in service.history(s, actor=OPERATOR, project=p2)]
            assert versions == ["1.0"]
            published = s.query(Event).filter(Event.action == "guideline.publish").count()
            assert published == 1
    finally:
        engine.dispose()
