"""A project's settings rows are read as defaults until first written; two first writers
at once must share the one row (:func:`labelloop.store.conflicts.stored_row`), never
fail on its primary key. The first writer holds its transaction open while the second
starts (PostgreSQL: the second's insert waits on the first's row; SQLite: on the write
lock); once the first commits, the second goes on and writes over it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop.adjudication import service as adjudication
from labelloop.adjudication.models import AdjudicationSettings, Case
from labelloop.feedback import service as feedback
from labelloop.feedback.models import FeedbackSettings
from labelloop.projects.models import Project
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.trail.models import Event
from labelloop.workbench import service as workbench
from labelloop.workbench.models import QueueSettings
from labelloop.workbench.schemas import SettingsIn
from tests.adjudication.test_worker import OPERATOR, _project

Write = Callable[[Session, Project, int], object]


def _feedback(s: Session, p: Project, n: int) -> object:
    return feedback.update_settings(s, actor=OPERATOR, project=p, due_days=n)


def _adjudication(s: Session, p: Project, n: int) -> object:
    return adjudication.update_settings(s, actor=OPERATOR, project=p, changes={"sla_hours": n})


def _detection(s: Session, p: Project, n: int) -> object:
    return adjudication.detect(s, actor=OPERATOR, project=p)


def _queue(s: Session, p: Project, n: int) -> object:
    return workbench.update_settings(s, actor=OPERATOR, project=p, change=SettingsIn(overlap=n))


WRITES: dict[str, tuple[Write, type, str]] = {
    "feedback": (_feedback, FeedbackSettings, "feedback.settings"),
    "adjudication": (_adjudication, AdjudicationSettings, "adjudication.settings"),
    "detection": (_detection, AdjudicationSettings, "case.detect"),
    "queue": (_queue, QueueSettings, "workbench.settings.update"),
}


@pytest.mark.parametrize("kind", list(WRITES))
def test_two_first_writers_share_one_row(fresh_database_url: str, kind: str) -> None:
    write, model, action = WRITES[kind]
    project_id = _project(fresh_database_url, n_disputed=2)
    engine = make_engine(fresh_database_url)
    factory = make_session_factory(engine)
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with session_scope(factory) as s:
                write(s, s.get(Project, project_id), 2)  # type: ignore[arg-type]
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        first = factory()
        write(first, first.get(Project, project_id), 1)  # type: ignore[arg-type]
        first.flush()  # the first's row is written, not committed
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # waiting for the first
        first.commit()
        first.close()
        thread.join(30)
        assert not thread.is_alive() and errors == []
        with session_scope(factory) as s:
            assert s.scalar(select(func.count()).select_from(model)) == 1
            events = s.scalar(select(func.count(Event.id)).where(Event.action == action))
            assert events == 2
            cfg = s.get(model, project_id)
            if kind == "feedback":
                assert cfg.due_days == 2  # type: ignore[attr-defined]
            elif kind == "adjudication":
                assert cfg.sla_hours == 2  # type: ignore[attr-defined]
            elif kind == "queue":
                assert cfg.overlap == 2  # type: ignore[attr-defined]
            else:  # the second found the first's cases and opened none
                assert cfg.detected_at is not None  # type: ignore[attr-defined]
                assert s.scalar(select(func.count(Case.id))) == 2
    finally:
        engine.dispose()


def test_reading_the_settings_writes_nothing(fresh_database_url: str) -> None:
    """Until a first write the settings are the defaults, and reading them (also on a
    read-only session) stores no row."""
    project_id = _project(fresh_database_url, n_disputed=0)
    reader = make_engine(fresh_database_url, read_only=True)
    try:
        with session_scope(make_session_factory(reader)) as s:
            project = s.get(Project, project_id)
            assert project is not None
            assert feedback.settings_of(s, project).due_days == 7
            cfg = adjudication.settings_of(s, project)
            assert cfg.sla_hours == 48.0 and cfg.detected_at is None
        with session_scope(make_session_factory(reader)) as s:
            for model in (FeedbackSettings, AdjudicationSettings):
                assert s.scalar(select(func.count()).select_from(model)) == 0
    finally:
        reader.dispose()
