"""Project services: permissions, validation at entry, trail events in the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Role
from labelloop.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from labelloop.projects import service
from labelloop.projects.models import Annotation, GoldLabel, Prediction, Project
from labelloop.projects.schemas import LabelSchema
from labelloop.trail.models import Event

OPERATOR = Actor.local("test")

INTENT = LabelSchema.from_yaml(
    """
task_type: single
labels: [billing, refund, other]
attributes:
  - {name: note, type: text}
rules:
  - when: {label: other}
    require_attributes: [note]
  - when: {active_seconds_below: 2}
    flag: too_fast
"""
)


def events(session: Session, action: str) -> list[Event]:
    return list(trail.service.query(session, action=action, newest_first=False))


def as_user(user: object, *, admin: bool = False) -> Actor:
    return Actor.for_user(user.id, user.username, is_admin=admin)  # type: ignore[attr-defined]


@pytest.fixture
def project(session: Session) -> Project:
    return service.create_project(
        session, actor=OPERATOR, name="intents", schema=INTENT, description="tickets"
    )


# -- projects ------------------------------------------------------------------------------


def test_create_project_writes_row_and_event(session: Session, project: Project) -> None:
    assert project.id is not None and project.schema_version == 1 and project.task_type == "single"
    assert LabelSchema.from_dict(project.label_schema) == INTENT
    (event,) = events(session, "project.create")
    assert event.entity_id == str(project.id) and event.project_id == project.id
    assert event.after["name"] == "intents" and event.after["schema"] == INTENT.to_json()
    assert trail.service.verify(session).ok


def test_create_project_refusals(session: Session, project: Project, factories: ModuleType) -> None:
    with pytest.raises(Conflict, match="already exists"):
        service.create_project(session, actor=OPERATOR, name="intents", schema=INTENT)
    with pytest.raises(ValidationFailed, match="all digits"):
        service.create_project(session, actor=OPERATOR, name="42", schema=INTENT)
    with pytest.raises(ValidationFailed):
        service.create_project(session, actor=OPERATOR, name=" padded", schema=INTENT)
    lead = factories.MembershipFactory(project=project, lead=True)
    with pytest.raises(PermissionDenied):  # creating projects is for administrators
        service.create_project(
            session, actor=Actor(name="user:x", user_id=lead.user_id), name="new", schema=INTENT
        )
    admin = factories.AdminFactory()
    assert service.create_project(
        session, actor=as_user(admin, admin=True), name="new", schema=INTENT
    ).id


def test_rollback_leaves_no_event(session: Session) -> None:
    before = session.scalar(select(func.count(Event.id)))
    nested = session.begin_nested()
    service.create_project(session, actor=OPERATOR, name="temporary", schema=INTENT)
    assert session.scalar(select(func.count(Event.id))) == before + 1  # same transaction
    nested.rollback()
    assert session.scalar(select(func.count(Event.id))) == before
    assert session.scalar(select(Project.id).where(Project.name == "temporary")) is None
    assert trail.service.verify(session).ok


def test_get_project_by_name_or_id(session: Session, project: Project) -> None:
    assert service.get_project(session, "intents") is project
    assert service.get_project(session, project.id) is project
    assert service.get_project(session, str(project.id)) is project
    with pytest.raises(NotFound, match=r"no project named 'intens' \(did you mean 'intents'\?\)"):
        service.get_project(session, "intens")
    with pytest.raises(NotFound, match="no project with id 99999"):
        service.get_project(session, 99999)


def test_list_projects_for_members_only(
    session: Session, project: Project, factories: ModuleType
) -> None:
    other = factories.ProjectFactory(name="zzz-other")
    member = factories.MembershipFactory(project=project)
    names = [p.name for p in service.list_projects(session)]
    assert "intents" in names and "zzz-other" in names
    mine = service.list_projects(session, actor=Actor(name="u", user_id=member.user_id))
    assert [p.name for p in mine] == ["intents"]
    assert other.id


def test_summary_counts(session: Session, project: Project, factories: ModuleType) -> None:
    items = factories.ItemFactory.create_batch(3, project=project)
    alice, bob = factories.UserFactory(), factories.UserFactory()
    for item in items:
        factories.AnnotationFactory(item=item, annotator=alice, value="billing")
    factories.AnnotationFactory(
        item=items[0], annotator=bob, value="refund", flags=[{"code": "too_fast"}]
    )
    factories.GoldLabelFactory(item=items[0], value="billing")
    factories.PredictionFactory(item=items[1], value="refund")
    summary = service.project_summary(session, project)
    assert summary.as_dict() == {
        "items": 3,
        "annotations": 4,
        "annotators": 2,
        "gold": 1,
        "predictions": 1,
        "flagged": 1,
    }


# -- permissions ---------------------------------------------------------------------------


def test_annotator_cannot_manage_project(
    session: Session, project: Project, factories: ModuleType
) -> None:
    membership = factories.MembershipFactory(project=project, role=Role.ANNOTATOR.value)
    annotator = Actor(name="user:ann", user_id=membership.user_id)
    new = LabelSchema.from_dict(
        {"task_type": "single", "labels": ["billing", "refund", "other", "spam"]}
    )
    before = session.scalar(select(func.count(Event.id)))
    with pytest.raises(PermissionDenied, match=r"project\.manage"):
        service.update_schema(session, actor=annotator, project=project, schema=new)
    with pytest.raises(PermissionDenied):
        service.set_gold(session, actor=annotator, project=project, item_id=0, value="billing")
    with pytest.raises(PermissionDenied):
        service.add_prediction(
            session, actor=annotator, project=project, item_id=0, model_name="m", value="billing"
        )
    with pytest.raises(PermissionDenied):
        service.add_item(
            session, actor=annotator, project=project, external_id="x", payload={"text": "x"}
        )
    assert project.schema_version == 1
    assert session.scalar(select(func.count(Event.id))) == before


def test_recording_annotations_as_given_is_for_leads_and_members_only(
    session: Session, project: Project, factories: ModuleType
) -> None:
    """Annotators label through the queue (workbench.submit); recording an annotation
    as given (its own times, any annotator) needs data.import, and the annotator must
    hold a role in the project that may annotate."""
    item = factories.ItemFactory(project=project)
    mine = factories.MembershipFactory(project=project)
    lead = factories.MembershipFactory(project=project, lead=True)
    someone = factories.UserFactory()
    me = Actor(name="user:me", user_id=mine.user_id)
    with pytest.raises(PermissionDenied, match=r"data\.import"):
        service.submit_annotation(
            session,
            actor=me,
            project=project,
            item_id=item.id,
            annotator_id=mine.user_id,
            value="billing",
        )
    boss = Actor(name="user:lead", user_id=lead.user_id)
    ann = service.submit_annotation(
        session,
        actor=boss,
        project=project,
        item_id=item.id,
        annotator_id=mine.user_id,
        value="billing",
    )
    assert ann.annotator_id == mine.user_id
    with pytest.raises(ValidationFailed) as refused:
        service.submit_annotation(
            session,
            actor=boss,
            project=project,
            item_id=item.id,
            annotator_id=someone.id,
            value="billing",
        )
    assert [v.field for v in refused.value.violations] == ["annotator_id"]


# -- annotations ---------------------------------------------------------------------------


def test_submit_annotation_stores_warnings_as_flags(
    session: Session, project: Project, factories: ModuleType
) -> None:
    item = factories.ItemFactory(project=project)
    user = factories.UserFactory()
    start = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
    ann = service.submit_annotation(
        session,
        actor=OPERATOR,
        project=project,
        item_id=item.id,
        annotator_id=user.id,
        value="refund",
        started_at=start,
        submitted_at=start + timedelta(seconds=1),
        guideline_version="v3",
        source="workbench",
    )
    assert ann.value == "refund" and ann.guideline_version == "v3" and ann.source == "workbench"
    assert [f["code"] for f in ann.flags] == ["too_fast"]
    (event,) = events(session, "annotation.create")
    assert event.entity_id == str(ann.id) and event.after["flags"] == ann.flags
    assert trail.service.verify(session).ok


def test_invalid_annotation_saves_nothing(
    session: Session, project: Project, factories: ModuleType
) -> None:
    item = factories.ItemFactory(project=project)
    user = factories.UserFactory()
    before = session.scalar(select(func.count(Event.id)))
    with pytest.raises(ValidationFailed) as exc:
        service.submit_annotation(
            session,
            actor=OPERATOR,
            project=project,
            item_id=item.id,
            annotator_id=user.id,
            value="other",
            attributes={"colour": "red"},
            active_seconds=1,
        )
    assert [str(v) for v in exc.value.violations] == [
        "attributes.colour: unknown attribute 'colour'; defined: note",
        "attributes.note: attribute 'note' is required when the label is 'other' (rules[0])",
    ]
    assert (
        session.scalar(select(func.count(Annotation.id)).where(Annotation.project_id == project.id))
        == 0
    )
    assert session.scalar(select(func.count(Event.id))) == before


def test_resubmission_updates_with_before_and_after(
    session: Session, project: Project, factories: ModuleType
) -> None:
    item = factories.ItemFactory(project=project)
    user = factories.UserFactory()
    kwargs = {"actor": OPERATOR, "project": project, "item_id": item.id, "annotator_id": user.id}
    first = service.submit_annotation(session, value="billing", **kwargs)  # type: ignore[arg-type]
    second = service.submit_annotation(session, value="refund", **kwargs)  # type: ignore[arg-type]
    assert first.id == second.id and second.value == "refund"
    (update,) = events(session, "annotation.update")
    assert update.before["value"] == "billing" and update.after["value"] == "refund"


def test_annotation_for_item_of_another_project(
    session: Session, project: Project, factories: ModuleType
) -> None:
    foreign = factories.ItemFactory()
    user = factories.UserFactory()
    with pytest.raises(NotFound, match="in project 'intents'"):
        service.submit_annotation(
            session,
            actor=OPERATOR,
            project=project,
            item_id=foreign.id,
            annotator_id=user.id,
            value="billing",
        )


def test_spans_checked_against_item_text_and_sorted(
    session: Session, factories: ModuleType
) -> None:
    schema = LabelSchema.from_dict({"task_type": "spans", "labels": ["ORG", "PERSON"]})
    project = service.create_project(session, actor=OPERATOR, name="ner", schema=schema)
    item = service.add_item(
        session,
        actor=OPERATOR,
        project=project,
        external_id="doc-1",
        payload={"text": "Компания SpaceX, основанная Илоном Маском"},
        segments={"language": "ru"},
        tags=["news"],
    )
    user = factories.UserFactory()
    value = [
        {"start": 28, "end": 41, "label": "PERSON", "text": "Илоном Маском"},
        {"start": 9, "end": 15, "label": "ORG", "text": "SpaceX"},
    ]
    ann = service.submit_annotation(
        session, actor=OPERATOR, project=project, item_id=item.id, annotator_id=user.id, value=value
    )
    assert [r["label"] for r in ann.value] == ["ORG", "PERSON"]
    with pytest.raises(ValidationFailed) as exc:
        service.submit_annotation(
            session,
            actor=OPERATOR,
            project=project,
            item_id=item.id,
            annotator_id=user.id,
            value=[{"start": 28, "end": 45, "label": "PERSON"}],
        )
    assert [v.field for v in exc.value.violations] == ["value[0].end"]
    assert events(session, "item.create")[0].after["segments"] == {"language": "ru"}


def test_add_item_duplicate(session: Session, project: Project) -> None:
    service.add_item(
        session, actor=OPERATOR, project=project, external_id="t1", payload={"text": "hi"}
    )
    with pytest.raises(Conflict):
        service.add_item(
            session, actor=OPERATOR, project=project, external_id="t1", payload={"text": "hi"}
        )


# -- schema updates --------------------------------------------------------------------------


def test_update_schema_bumps_version_with_event(session: Session, project: Project) -> None:
    new = LabelSchema.from_dict(
        {"task_type": "single", "labels": ["billing", "refund", "other", "spam"]}
    )
    service.update_schema(session, actor=OPERATOR, project=project, schema=new)
    assert project.schema_version == 2 and service.schema_of(project) == new
    (event,) = events(session, "project.schema.update")
    assert event.before["schema_version"] == 1 and event.after["schema_version"] == 2
    assert event.before["schema"] == INTENT.to_json() and event.after["schema"] == new.to_json()
    service.update_schema(session, actor=OPERATOR, project=project, schema=new)  # unchanged: no-op
    assert project.schema_version == 2 and len(events(session, "project.schema.update")) == 1


def test_update_schema_refuses_to_orphan_labels(
    session: Session, project: Project, factories: ModuleType
) -> None:
    item = factories.ItemFactory(project=project)
    factories.AnnotationFactory(item=item, value="refund")
    factories.GoldLabelFactory(item=item, value="refund")
    narrower = LabelSchema.from_dict({"task_type": "single", "labels": ["billing", "other"]})
    with pytest.raises(ValidationFailed, match="would make 2 stored record") as exc:
        service.update_schema(session, actor=OPERATOR, project=project, schema=narrower)
    assert all("unknown label 'refund'" in v.message for v in exc.value.violations)
    assert project.schema_version == 1 and project.label_schema == INTENT.to_json()
    service.update_schema(session, actor=OPERATOR, project=project, schema=narrower, force=True)
    assert project.schema_version == 2
    assert events(session, "project.schema.update")[0].after["forced"] is True


# -- gold and predictions ---------------------------------------------------------------------


def test_set_gold_validates_and_replaces(
    session: Session, project: Project, factories: ModuleType
) -> None:
    item = factories.ItemFactory(project=project)
    with pytest.raises(ValidationFailed):
        service.set_gold(session, actor=OPERATOR, project=project, item_id=item.id, value="nope")
    gold = service.set_gold(
        session, actor=OPERATOR, project=project, item_id=item.id, value="billing", rationale="r1"
    )
    again = service.set_gold(
        session,
        actor=OPERATOR,
        project=project,
        item_id=item.id,
        value="refund",
        rationale="ruling 7",
        source="adjudication",
    )
    assert gold.id == again.id and again.value == "refund" and again.source == "adjudication"
    assert session.scalar(select(func.count(GoldLabel.id)).where(GoldLabel.item_id == item.id)) == 1
    assert [e.before for e in events(session, "gold.set")][1]["value"] == "billing"


def test_add_prediction_from_probabilities(
    session: Session, project: Project, factories: ModuleType
) -> None:
    item = factories.ItemFactory(project=project)
    pred = service.add_prediction(
        session,
        actor=OPERATOR,
        project=project,
        item_id=item.id,
        model_name="bert",
        model_version="2",
        probabilities={"billing": 0.7, "refund": 0.2, "other": 0.1},
    )
    assert pred.value == "billing" and pred.probabilities == {
        "billing": 0.7,
        "refund": 0.2,
        "other": 0.1,
    }
    with pytest.raises(ValidationFailed) as exc:
        service.add_prediction(
            session,
            actor=OPERATOR,
            project=project,
            item_id=item.id,
            model_name="bert",
            probabilities={"billing": 1.5, "spam": 0.1},
        )
    assert {v.field for v in exc.value.violations} >= {
        "probabilities.billing",
        "probabilities.spam",
    }
    with pytest.raises(ValidationFailed, match="breaks the label schema"):
        service.add_prediction(
            session, actor=OPERATOR, project=project, item_id=item.id, model_name="bert"
        )
    again = service.add_prediction(
        session,
        actor=OPERATOR,
        project=project,
        item_id=item.id,
        model_name="bert",
        model_version="2",
        value="refund",
    )
    assert again.id == pred.id and again.value == "refund"
    assert (
        session.scalar(select(func.count(Prediction.id)).where(Prediction.item_id == item.id)) == 1
    )
    assert len(events(session, "prediction.set")) == 2
    assert trail.service.verify(session).ok
