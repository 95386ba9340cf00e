"""My quality keeps the project's reference labels between views
(:mod:`labelloop.feedback.reference_cache`): views of an unchanged project, whoever's
page, reuse them; a new, changed or deleted annotation or gold label recomputes them;
the figures equal a computation without the cache; the table stays within its bounds
when threads share it."""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.feedback import quality
from labelloop.feedback.reference_cache import CACHE, ProjectReference, ReferenceCache
from labelloop.projects import service as projects
from labelloop.projects.models import Annotation, Item, Project
from tests.guidelines._data import INTENT

OPERATOR = Actor.local("test")
#: Each item's labels by the three annotators.
VOTES = [
    ("refund", "refund", "billing"),
    ("billing", "billing", "billing"),
    ("technical", "refund", "technical"),
    ("refund", "billing", "refund"),
]


@pytest.fixture(autouse=True)
def _empty_cache() -> Any:
    CACHE.clear()
    yield
    CACHE.clear()


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The projects whose reference was computed, one entry per computation."""
    calls: list[int] = []
    original = quality.project_reference

    def counted(session: Session, project: Project) -> ProjectReference:
        calls.append(project.id)
        return original(session, project)

    monkeypatch.setattr(quality, "project_reference", counted)
    return calls


def _team(factories: ModuleType) -> tuple[Project, list[User], list[Item]]:
    project = factories.ProjectFactory(label_schema=INTENT)
    people = [factories.UserFactory() for _ in range(3)]
    for user in people:
        factories.MembershipFactory(user=user, project=project)
    items = []
    for n, votes in enumerate(VOTES):
        item = factories.ItemFactory(project=project, external_id=f"t{n}")
        for user, label in zip(people, votes, strict=True):
            factories.AnnotationFactory(item=item, annotator=user, value=label)
        items.append(item)
    return project, people, items


def _view(session: Session, project: Project, user: User) -> dict[str, Any]:
    return quality.my_quality(
        session, actor=Actor.for_user(user.id, user.username), project=project
    )


def _uncached(session: Session, project: Project, user: User) -> dict[str, Any]:
    CACHE.clear()
    return _view(session, project, user)


def test_views_reuse_the_reference_until_the_project_changes(
    factories: ModuleType, session: Session, computed: list[int]
) -> None:
    project, (ann, bea, cyd), items = _team(factories)
    first = _view(session, project, ann)
    assert _view(session, project, ann) == first
    _view(session, project, bea)  # another member's page: the same reference
    assert len(computed) == 1

    changes = [
        lambda: factories.AnnotationFactory(item=items[0], annotator=factories.UserFactory()),
        lambda: projects.submit_annotation(  # a changed label moves updated_at
            session,
            actor=OPERATOR,
            project=project,
            item_id=items[1].id,
            annotator_id=ann.id,
            value="technical",
        ),
        lambda: projects.set_gold(
            session, actor=OPERATOR, project=project, item_id=items[2].id, value="refund"
        ),
        lambda: session.delete(
            session.scalars(
                select(Annotation).where(
                    Annotation.item_id == items[3].id, Annotation.annotator_id == cyd.id
                )
            ).one()
        ),
    ]
    for change in changes:
        before = len(computed)
        change()
        session.flush()
        seen = _view(session, project, ann)
        assert len(computed) == before + 1
        assert _view(session, project, ann) == seen and len(computed) == before + 1
        assert seen == _uncached(session, project, ann)
    assert _view(session, project, ann)["gold"]["n"] == 1


def test_the_cache_is_bounded_by_entries_and_bytes() -> None:
    def ref(n: int) -> ProjectReference:
        ints = np.zeros(n, dtype=np.int64)
        return ProjectReference(
            ints, ints.copy(), ints.copy(), np.zeros(n, bool), np.zeros(n), ("a",)
        )

    cache = ReferenceCache(max_entries=2, max_bytes=10_000)
    for project in range(3):
        cache.put(("db", project), (project,), ref(10))
    assert len(cache) == 2 and cache.get(("db", 0), (0,)) is None
    assert cache.get(("db", 2), (2,)) is not None
    assert cache.get(("db", 2), ("changed",)) is None  # another fingerprint: a miss
    cache.put(("db", 9), (9,), ref(1_000))  # 33,000 bytes alone: not kept
    assert cache.get(("db", 9), (9,)) is None and len(cache) == 2
    with pytest.raises(ValueError):
        ref(1).label[0] = 1  # shared arrays are read-only


def test_threads_share_the_cache() -> None:
    cache = ReferenceCache(max_entries=4)
    errors: list[BaseException] = []
    value = ProjectReference(
        *(np.zeros(3, np.int64) for _ in range(3)), np.zeros(3, bool), np.zeros(3), ()
    )

    def work(seed: int) -> None:
        try:
            for i in range(2_000):
                key = ("db", (seed * 7 + i) % 9)
                if cache.get(key, (i % 3,)) is None:
                    cache.put(key, (i % 3,), value)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(cache) <= 4
