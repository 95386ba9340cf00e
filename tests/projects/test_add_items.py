"""``add_items``: find or add items by external id, all or nothing, with field paths;
and ``import_batches``."""

from __future__ import annotations

from types import ModuleType

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.errors import Conflict, PermissionDenied, ValidationFailed
from labelloop.projects import service
from labelloop.projects.models import ImportBatch, Item, Project
from labelloop.projects.service import NewItem

OPERATOR = Actor.local("test")


def _items(session: Session, project: Project) -> int:
    return int(
        session.scalar(select(func.count()).select_from(Item).where(Item.project_id == project.id))
        or 0
    )


def test_add_items_finds_or_adds(session: Session, factories: ModuleType) -> None:
    project = factories.ProjectFactory()
    new = [
        NewItem("a", {"text": "one"}, segments={"language": "de"}, tags=["x", "x", "b"]),
        NewItem("b", {"text": "two"}, metadata={"source": "mail"}),
    ]
    rows = service.add_items(session, actor=OPERATOR, project=project, items=new)
    assert [(i.external_id, created) for i, created in rows] == [("a", True), ("b", True)]
    assert rows[0][0].tags == ["b", "x"] and rows[1][0].meta == {"source": "mail"}
    assert len(list(trail.service.query(session, action="item.create"))) == 2
    again = service.add_items(
        session, actor=OPERATOR, project=project, items=[new[1], NewItem("c", {"text": "3"})]
    )
    assert [(i.external_id, created) for i, created in again] == [("b", False), ("c", True)]
    assert again[0][0].id == rows[1][0].id
    assert _items(session, project) == 3
    assert len(list(trail.service.query(session, action="item.create"))) == 3


def test_add_items_refuses_with_field_paths_and_writes_nothing(
    session: Session, factories: ModuleType
) -> None:
    project = factories.ProjectFactory()
    service.add_items(session, actor=OPERATOR, project=project, items=[NewItem("a", {"t": 1})])
    with pytest.raises(ValidationFailed) as info:
        service.add_items(
            session,
            actor=OPERATOR,
            project=project,
            items=[
                NewItem("new", {}),
                NewItem(" ", {}),
                NewItem("new", {}),
                NewItem("z", {}, segments={"k": {"nested": 1}}),
                NewItem("y", {}, tags=[""]),
            ],
        )
    assert [v.field for v in info.value.violations] == [
        "items.1.external_id",
        "items.2.external_id",
        "items.3.segments.k",
        "items.4.tags.0",
    ]
    with pytest.raises(Conflict, match="different payload"):
        service.add_items(
            session,
            actor=OPERATOR,
            project=project,
            items=[NewItem("fresh", {}), NewItem("a", {"t": 2})],
        )
    with pytest.raises(ValidationFailed, match="not valid"):
        service.add_items(session, actor=OPERATOR, project=project, items=[])
    assert _items(session, project) == 1


def test_only_importers_add_items_and_see_batches(session: Session, factories: ModuleType) -> None:
    project = factories.ProjectFactory()
    member = factories.MembershipFactory(project=project)  # an annotator
    actor = Actor.for_user(member.user_id, "annotator")
    with pytest.raises(PermissionDenied):
        service.add_items(session, actor=actor, project=project, items=[NewItem("a", {})])
    with pytest.raises(PermissionDenied):
        service.import_batches(session, actor=actor, project=project)
    for n in range(3):
        session.add(
            ImportBatch(
                project_id=project.id,
                filename=f"f{n}.csv",
                sha256=str(n) * 64,
                format="csv",
                counts={},
                actor="test",
            )
        )
    session.flush()
    lead = factories.MembershipFactory(project=project, lead=True)
    names = [
        b.filename
        for b in service.import_batches(
            session, actor=Actor.for_user(lead.user_id, "lead"), project=project, limit=2
        )
    ]
    assert len(names) == 2 and set(names) <= {"f0.csv", "f1.csv", "f2.csv"}
