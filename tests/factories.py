"""factory_boy factories for the domain core, bound to the test's session.

Use the ``factories`` fixture (``tests/conftest.py``), which binds these to the
SAVEPOINT-isolated ``session``; or call :func:`bind` yourself::

    project = factories.ProjectFactory(spans=True)
    item = factories.ItemFactory(project=project)
    ann = factories.AnnotationFactory(item=item, value="spam")

Factories write ORM rows directly (``flush``, no trail events): they set up state for a
test; services under test write their own events.
"""

from __future__ import annotations

from typing import Any

import factory
from sqlalchemy.orm import Session

from labelloop.accounts.models import Membership, User
from labelloop.accounts.roles import Role
from labelloop.projects.models import Annotation, GoldLabel, Item, Prediction, Project
from labelloop.projects.schemas import LabelSchema

_BOUND: dict[str, Session | None] = {"session": None}


def bind(session: Session | None) -> None:
    """Make every factory write to ``session`` (None unbinds)."""
    _BOUND["session"] = session


def _session() -> Session:
    session = _BOUND["session"]
    if session is None:
        raise RuntimeError("factories are not bound to a session; use the `factories` fixture")
    return session


#: Label schemas by variant name, in their YAML-equivalent JSON form.
SCHEMAS: dict[str, dict[str, Any]] = {
    "single": {"task_type": "single", "labels": ["positive", "negative", "neutral"]},
    "multi": {
        "task_type": "multi",
        "labels": ["billing", "refund", "technical", "other"],
        "min_labels": 1,
    },
    "ordinal": {"task_type": "ordinal", "scale": {"min": 1, "max": 5, "step": 1}},
    "spans": {"task_type": "spans", "labels": ["ORG", "PERSON", "LOC", "PRODUCT"]},
    "text": {"task_type": "text"},
}


class _Base(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = _session
        sqlalchemy_session_persistence = "flush"


class UserFactory(_Base):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    display_name = factory.LazyAttribute(lambda o: o.username.title())
    is_admin = False


class AdminFactory(UserFactory):
    is_admin = True


class ProjectFactory(_Base):
    """A project; pick the schema with a trait (``spans=True``, ``multi=True``...) or
    pass ``label_schema`` (a dict or a :class:`LabelSchema`)."""

    class Meta:
        model = Project

    class Params:
        multi = factory.Trait(label_schema=SCHEMAS["multi"])
        ordinal = factory.Trait(label_schema=SCHEMAS["ordinal"])
        spans = factory.Trait(label_schema=SCHEMAS["spans"])
        text = factory.Trait(label_schema=SCHEMAS["text"])

    name = factory.Sequence(lambda n: f"project-{n}")
    description = None
    label_schema = SCHEMAS["single"]
    task_type = factory.LazyAttribute(lambda o: o.label_schema["task_type"])
    schema_version = 1

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        schema = kwargs.get("label_schema")
        if isinstance(schema, LabelSchema):
            kwargs["label_schema"] = schema.to_json()
        else:  # validate and normalise
            kwargs["label_schema"] = LabelSchema.from_dict(schema, source="factory").to_json()
        kwargs["task_type"] = kwargs["label_schema"]["task_type"]
        return super()._create(model_class, *args, **kwargs)


class MembershipFactory(_Base):
    class Meta:
        model = Membership
        exclude = ("user", "project")

    user = factory.SubFactory(UserFactory)
    user_id = factory.SelfAttribute("user.id")
    project = factory.SubFactory(ProjectFactory)
    project_id = factory.SelfAttribute("project.id")
    role = Role.ANNOTATOR.value

    class Params:
        lead = factory.Trait(role=Role.LEAD.value)


class ItemFactory(_Base):
    class Meta:
        model = Item
        exclude = ("project",)

    project = factory.SubFactory(ProjectFactory)
    project_id = factory.SelfAttribute("project.id")
    external_id = factory.Sequence(lambda n: f"item-{n}")
    payload = factory.Sequence(lambda n: {"text": f"ticket number {n}: my invoice is wrong"})
    meta = factory.LazyFunction(dict)
    segments = factory.LazyFunction(lambda: {"language": "en"})
    tags = factory.LazyFunction(list)


def _default_value(o: Any) -> Any:
    project = _session().get(Project, o.item.project_id)
    assert project is not None
    schema = LabelSchema.from_dict(project.label_schema)
    if schema.task_type == "single":
        return schema.label_names[0]
    if schema.task_type == "multi":
        return schema.label_names[: max(1, schema.min_labels)]
    if schema.task_type == "ordinal":
        return schema.scale.min if schema.scale else schema.label_names[0]
    if schema.task_type == "spans":
        return []
    return "a free-text answer"


class AnnotationFactory(_Base):
    class Meta:
        model = Annotation
        exclude = ("item", "annotator")

    item = factory.SubFactory(ItemFactory)
    item_id = factory.SelfAttribute("item.id")
    project_id = factory.SelfAttribute("item.project_id")
    annotator = factory.SubFactory(UserFactory)
    annotator_id = factory.SelfAttribute("annotator.id")
    external_key = ""
    value = factory.LazyAttribute(_default_value)
    attributes = factory.LazyFunction(dict)
    active_seconds = 12.5
    source = "test"
    flags = factory.LazyFunction(list)


class GoldLabelFactory(_Base):
    class Meta:
        model = GoldLabel
        exclude = ("item",)

    item = factory.SubFactory(ItemFactory)
    item_id = factory.SelfAttribute("item.id")
    project_id = factory.SelfAttribute("item.project_id")
    value = factory.LazyAttribute(_default_value)
    rationale = "expert decision"
    source = "expert"


class PredictionFactory(_Base):
    class Meta:
        model = Prediction
        exclude = ("item",)

    item = factory.SubFactory(ItemFactory)
    item_id = factory.SelfAttribute("item.id")
    project_id = factory.SelfAttribute("item.project_id")
    model_name = "baseline"
    model_version = "1"
    value = factory.LazyAttribute(_default_value)
    probabilities = None
    score = 0.9
