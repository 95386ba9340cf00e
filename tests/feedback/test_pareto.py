"""The error-type Pareto of feedback on the hand-built loop of
:mod:`tests.analytics.loop_data`: items of sent notes by confusion, drafts left out,
the tail folded into "other pairs", and who may read it."""

from __future__ import annotations

from types import ModuleType

import pytest
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.errors import PermissionDenied
from labelloop.feedback.pareto import ParetoRow, error_pareto
from labelloop.projects.models import Project
from tests.analytics.loop_data import SCHEMA, add_feedback


def _project(factories: ModuleType, session: Session) -> tuple[Project, User]:
    project = factories.ProjectFactory(label_schema=SCHEMA)
    first, second = factories.UserFactory(), factories.UserFactory()
    factories.MembershipFactory(user=first, project=project)
    add_feedback(session, project, first.id, second.id)
    return project, first


def test_items_by_confusion_with_cumulative_share(session: Session, factories: ModuleType) -> None:
    project, _ = _project(factories, session)
    rows = error_pareto(session, actor=Actor.local("test"), project=project)
    # the draft (refund → other, 3 items) is not counted
    assert rows == [
        ParetoRow("billing", "refund", 4, 2, 0.8, 0.8),
        ParetoRow("other", "billing", 1, 1, 0.2, 1.0),
    ]


def test_the_tail_is_one_row(session: Session, factories: ModuleType) -> None:
    project, _ = _project(factories, session)
    rows = error_pareto(session, actor=Actor.local("test"), project=project, top=1)
    assert rows == [
        ParetoRow("billing", "refund", 4, 2, 0.8, 0.8),
        ParetoRow(None, None, 1, 1, 0.2, 1.0),
    ]


def test_no_notes_no_rows(session: Session, factories: ModuleType) -> None:
    project = factories.ProjectFactory()
    assert error_pareto(session, actor=Actor.local("test"), project=project) == []


def test_annotators_may_not_read_it(session: Session, factories: ModuleType) -> None:
    project, annotator = _project(factories, session)
    actor = Actor.for_user(annotator.id, annotator.username)
    with pytest.raises(PermissionDenied):
        error_pareto(session, actor=actor, project=project)
