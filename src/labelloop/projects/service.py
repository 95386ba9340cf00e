"""Project use cases: projects and schemas, items, annotations, gold labels, predictions.

Services take ``session`` (and ``actor`` for writes) as keywords, check permissions with
:mod:`labelloop.accounts.policy`, never commit, and append a trail event for every write
in the caller's transaction. Every label goes through
:mod:`labelloop.projects.validation` first; nothing is written when it has errors.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import Membership, User
from labelloop.accounts.policy import allowed, require
from labelloop.accounts.roles import Permission
from labelloop.errors import Conflict, NotFound, ValidationFailed
from labelloop.guidelines.timeline import version_at
from labelloop.projects.models import (
    Annotation,
    GoldLabel,
    ImportBatch,
    Item,
    Prediction,
    Project,
)
from labelloop.projects.schemas import LabelSchema, ProjectSummary, check_project_name
from labelloop.projects.validation import (
    Violation,
    canonical_value,
    compile_validator,
    validate_value,
)
from labelloop.store.base import utcnow
from labelloop.store.conflicts import retry_on_unique

#: How many violations an error message carries at most (the rest are counted).
MAX_REPORTED = 50

_SCHEMAS: dict[tuple[int, int], LabelSchema] = {}


# -- projects -------------------------------------------------------------------------


def schema_of(project: Project) -> LabelSchema:
    """The project's label schema, parsed once per (project, schema version)."""
    key = (project.id, project.schema_version)
    cached = _SCHEMAS.get(key)
    if cached is not None and cached.to_json() == project.label_schema:
        return cached
    schema = LabelSchema.from_dict(project.label_schema, source=f"project {project.name!r} schema")
    if len(_SCHEMAS) > 256:
        _SCHEMAS.clear()
    _SCHEMAS[key] = schema
    return schema


def _project_json(project: Project) -> dict[str, Any]:
    return {
        "name": project.name,
        "description": project.description,
        "task_type": project.task_type,
        "schema_version": project.schema_version,
        "schema": project.label_schema,
    }


def create_project(
    session: Session,
    *,
    actor: Actor,
    name: str,
    schema: LabelSchema,
    description: str | None = None,
) -> Project:
    """Create a project (administrators and the local operator only)."""
    require(session, actor, Permission.PROJECT_MANAGE, project_id=None)
    name = check_project_name(name)
    if session.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise Conflict(f"project {name!r} already exists")
    project = Project(
        name=name,
        description=description,
        task_type=schema.task_type,
        label_schema=schema.to_json(),
        schema_version=1,
    )
    session.add(project)
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="project.create",
        entity_type="project",
        entity_id=project.id,
        project_id=project.id,
        after=_project_json(project),
    )
    return project


def get_project(session: Session, name_or_id: str | int) -> Project:
    """A project by name, or by id when given an int or a string of digits."""
    if isinstance(name_or_id, int) or (isinstance(name_or_id, str) and name_or_id.isdigit()):
        project = session.get(Project, int(name_or_id))
        if project is None:
            raise NotFound(f"no project with id {name_or_id}")
        return project
    project = session.scalar(select(Project).where(Project.name == name_or_id))
    if project is None:
        names = list(session.scalars(select(Project.name).limit(1000)))
        close = difflib.get_close_matches(name_or_id, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else " (see `labelloop project list`)"
        raise NotFound(f"no project named {name_or_id!r}{hint}")
    return project


def list_projects(session: Session, *, actor: Actor | None = None) -> Sequence[Project]:
    """Projects by name; for a non-admin user only those where they hold a role."""
    stmt = select(Project).order_by(Project.name)
    if actor is not None and not (actor.system or actor.is_admin):
        member_of = select(Membership.project_id).where(Membership.user_id == actor.user_id)
        stmt = stmt.where(Project.id.in_(member_of))
    return session.scalars(stmt).all()


def project_summary(session: Session, project: Project) -> ProjectSummary:
    """Counts of items, annotations, distinct annotators, gold labels, predictions and flagged annotations."""

    def count(stmt: Any) -> int:
        return int(session.scalar(stmt) or 0)

    pid = project.id
    length = (
        func.jsonb_array_length
        if session.get_bind().dialect.name == "postgresql"
        else func.json_array_length
    )
    flagged = count(
        select(func.count(Annotation.id)).where(
            Annotation.project_id == pid, length(Annotation.flags) > 0
        )
    )
    return ProjectSummary(
        items=count(select(func.count(Item.id)).where(Item.project_id == pid)),
        annotations=count(select(func.count(Annotation.id)).where(Annotation.project_id == pid)),
        annotators=count(
            select(func.count(func.distinct(Annotation.annotator_id))).where(
                Annotation.project_id == pid
            )
        ),
        gold=count(select(func.count(GoldLabel.id)).where(GoldLabel.project_id == pid)),
        predictions=count(select(func.count(Prediction.id)).where(Prediction.project_id == pid)),
        flagged=flagged,
    )


def _fail(message: str, violations: list[Violation]) -> ValidationFailed:
    shown = violations[:MAX_REPORTED]
    if len(violations) > MAX_REPORTED:
        message += f" (first {MAX_REPORTED} of {len(violations)} shown)"
    return ValidationFailed(message, shown)


def check_existing(session: Session, project: Project, schema: LabelSchema) -> list[Violation]:
    """Errors that stored annotations, gold labels and predictions would have under ``schema``."""
    problems: list[Violation] = []
    validate = compile_validator(schema)
    need_payload = schema.task_type == "spans"
    stmt = (
        select(Annotation.id, Annotation.value, Annotation.attributes, Item.payload)
        .join(Item, Item.id == Annotation.item_id)
        .where(Annotation.project_id == project.id)
        .order_by(Annotation.id)
        .execution_options(yield_per=5000)
    )
    for ann_id, value, attributes, payload in session.execute(stmt):
        for v in validate(
            value, attributes=attributes or None, payload=payload if need_payload else None
        ):
            if v.severity == "error":
                problems.append(Violation(f"annotation {ann_id}: {v.field}", v.code, v.message))
    for kind, model in (("gold label", GoldLabel), ("prediction", Prediction)):
        rows = session.execute(
            select(model.id, model.value, Item.payload)
            .join(Item, Item.id == model.item_id)
            .where(model.project_id == project.id)
            .order_by(model.id)
        )
        for row_id, value, payload in rows:
            if value is None:
                continue
            for v in validate_value(schema, value, payload=payload if need_payload else None):
                problems.append(Violation(f"{kind} {row_id}: {v.field}", v.code, v.message))
    return problems


def update_schema(
    session: Session, *, actor: Actor, project: Project, schema: LabelSchema, force: bool = False
) -> Project:
    """Replace the label schema and bump ``schema_version``.

    Refuses (ValidationFailed listing the records) a schema under which stored
    annotations, gold labels or predictions would be invalid, unless ``force``.
    An identical schema changes nothing.
    """
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project.id)
    new_json = schema.to_json()
    if new_json == project.label_schema:
        return project
    if not force:
        problems = check_existing(session, project, schema)
        if problems:
            raise _fail(
                f"the new schema would make {len({p.field.split(':')[0] for p in problems})} stored "
                f"record(s) of project {project.name!r} invalid; fix the schema or use --force",
                problems,
            )
    before = {
        "schema_version": project.schema_version,
        "task_type": project.task_type,
        "schema": project.label_schema,
    }
    project.label_schema = new_json
    project.task_type = schema.task_type
    project.schema_version += 1
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="project.schema.update",
        entity_type="project",
        entity_id=project.id,
        project_id=project.id,
        before=before,
        after={
            "schema_version": project.schema_version,
            "task_type": project.task_type,
            "schema": new_json,
            "forced": force,
        },
    )
    return project


# -- items ----------------------------------------------------------------------------


def add_item(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    external_id: str,
    payload: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    segments: Mapping[str, Any] | None = None,
    tags: Sequence[str] = (),
) -> Item:
    """Add one item; ``external_id`` must be new within the project."""
    require(session, actor, Permission.DATA_IMPORT, project_id=project.id)
    if not external_id:
        raise ValidationFailed(
            "external_id must not be empty",
            [Violation("external_id", "required", "must not be empty")],
        )
    if not isinstance(payload, Mapping):
        raise ValidationFailed(
            "payload must be an object", [Violation("payload", "type", "must be an object")]
        )
    exists = session.scalar(
        select(Item.id).where(Item.project_id == project.id, Item.external_id == external_id)
    )
    if exists is not None:
        raise Conflict(f"item {external_id!r} already exists in project {project.name!r}")
    item = Item(
        project_id=project.id,
        external_id=external_id,
        payload=dict(payload),
        meta=dict(metadata or {}),
        segments=dict(segments or {}),
        tags=sorted(set(tags)),
    )
    session.add(item)
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="item.create",
        entity_type="item",
        entity_id=item.id,
        project_id=project.id,
        after={"external_id": external_id, "segments": item.segments, "tags": item.tags},
    )
    return item


def get_item(session: Session, project: Project, item_id: int) -> Item:
    item = session.get(Item, item_id)
    if item is None or item.project_id != project.id:
        raise NotFound(f"no item {item_id} in project {project.name!r}")
    return item


# -- annotations ----------------------------------------------------------------------


def _annotation_json(a: Annotation) -> dict[str, Any]:
    return {
        "item_id": a.item_id,
        "annotator_id": a.annotator_id,
        "external_key": a.external_key,
        "value": a.value,
        "attributes": a.attributes,
        "started_at": a.started_at,
        "submitted_at": a.submitted_at,
        "active_seconds": a.active_seconds,
        "guideline_version": a.guideline_version,
        "source": a.source,
        "flags": a.flags,
    }


#: Built once: constructing a statement costs more than running it. The item's columns
#: that an annotation needs, without loading (and decoding) the whole row.
# the item and, in the same round trip, the id of the annotator's annotation of it with
# this external key (unique per item, annotator and key), which a resubmission updates
_ITEM_FOR_ANNOTATION = select(
    Item.id,
    Item.project_id,
    Item.external_id,
    Item.payload,
    select(Annotation.id)
    .where(
        Annotation.item_id == Item.id,
        Annotation.annotator_id == bindparam("annotator_id"),
        Annotation.external_key == bindparam("external_key"),
    )
    .scalar_subquery()
    .label("existing_id"),
).where(Item.id == bindparam("item_id"))


def submit_annotation(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    item_id: int,
    annotator_id: int,
    value: Any,
    attributes: Mapping[str, Any] | None = None,
    started_at: datetime | None = None,
    submitted_at: datetime | None = None,
    active_seconds: float | None = None,
    guideline_version: str | None = None,
    source: str = "api",
    external_key: str = "",
) -> Annotation:
    """Record one annotation as given, for any annotator of the project, with its own
    timestamps and active time (a resubmission with the same ``external_key`` updates
    it): the import capability (``data.import``: leads, imports, the CLI).

    Annotators label through the queue instead
    (:func:`labelloop.workbench.service.submit`), which enforces overlap, leases, one
    vote per item, server time and server-measured active time. The annotator must hold
    a role in the project that may annotate (system actors excepted). The trail event
    says ``"path": "import"``.
    """
    require(session, actor, Permission.DATA_IMPORT, project_id=project.id)
    if not actor.system and not allowed(
        session, Actor.for_user(annotator_id, ""), Permission.ANNOTATE, project_id=project.id
    ):
        raise ValidationFailed(
            f"user {annotator_id} is not an annotator of project {project.name!r}",
            [
                Violation(
                    "annotator_id",
                    "not_a_member",
                    "grant the user a role that may annotate in this project first",
                )
            ],
        )
    if not external_key:  # the key of queue votes: a recording must not replace one
        queued = session.scalar(
            select(Annotation.id).where(
                Annotation.item_id == item_id,
                Annotation.annotator_id == annotator_id,
                Annotation.external_key == "",
                Annotation.source == "workbench",
            )
        )
        if queued is not None:
            raise Conflict(
                f"user {annotator_id} labelled item {item_id} in the queue; a recorded "
                "annotation needs its own external_key and cannot replace that vote"
            )

    def save() -> Annotation:
        return save_annotation(
            session,
            actor=actor,
            project=project,
            item_id=item_id,
            annotator_id=annotator_id,
            value=value,
            attributes=attributes,
            started_at=started_at,
            submitted_at=submitted_at,
            active_seconds=active_seconds,
            guideline_version=guideline_version,
            source=source,
            external_key=external_key,
            path="import",
        )

    # the same (item, annotator, external_key) sent twice at once: the second updates
    return retry_on_unique(session, save)


def save_annotation(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    item_id: int,
    annotator_id: int,
    value: Any,
    attributes: Mapping[str, Any] | None,
    started_at: datetime | None,
    submitted_at: datetime | None,
    active_seconds: float | None,
    guideline_version: str | None,
    source: str,
    external_key: str,
    path: str,
    before_trail: Callable[[Annotation], None] | None = None,
) -> Annotation:
    """Validate and store one annotation, with its trail event. **No permission check**:
    the callers (:func:`submit_annotation`, the workbench queue) check theirs.

    Raises ValidationFailed with every violation and writes nothing when any is an
    error; warnings are stored in ``flags``. ``before_trail`` runs the caller's other
    writes after the annotation is stored and before its event is appended: appending
    takes the trail head's lock until the transaction ends, so the shorter the work
    after it, the less other writers wait.
    """
    item = session.execute(
        _ITEM_FOR_ANNOTATION,
        {"item_id": item_id, "annotator_id": annotator_id, "external_key": external_key},
    ).first()
    if item is None or item.project_id != project.id:
        raise NotFound(f"no item {item_id} in project {project.name!r}")
    # the caller's own account was found when the caller was authenticated
    if annotator_id != actor.user_id and session.get(User, annotator_id) is None:
        raise NotFound(f"no user with id {annotator_id}")
    schema = schema_of(project)
    violations = compile_validator(schema)(
        value,
        attributes=attributes,
        payload=item.payload,
        active_seconds=active_seconds,
        started_at=started_at,
        submitted_at=submitted_at,
    )
    errors = [v for v in violations if v.severity == "error"]
    if errors:
        raise _fail(f"annotation of item {item.external_id!r} breaks the label schema", errors)
    flags = [v.as_flag() for v in violations if v.severity == "warning"]
    value = canonical_value(schema, value)
    existing = None if item.existing_id is None else session.get(Annotation, item.existing_id)
    fields: dict[str, Any] = {
        "value": value,
        "attributes": dict(attributes or {}),
        "started_at": started_at,
        "submitted_at": submitted_at or utcnow(),
        "active_seconds": active_seconds,
        "guideline_version": guideline_version
        or version_at(session, project.id, submitted_at or utcnow()),
        "source": source,
        "flags": flags,
    }
    if existing is None:
        annotation = Annotation(
            project_id=project.id,
            item_id=item.id,
            annotator_id=annotator_id,
            external_key=external_key,
            **fields,
        )
        session.add(annotation)
        session.flush()
        action, before = "annotation.create", None
    else:
        annotation, before = existing, _annotation_json(existing)
        for key, v in fields.items():
            setattr(annotation, key, v)
        annotation.updated_at = utcnow()
        session.flush()
        action = "annotation.update"
    if before_trail is not None:
        before_trail(annotation)
    trail.service.append(
        session,
        actor=actor.name,
        action=action,
        entity_type="annotation",
        entity_id=annotation.id,
        project_id=project.id,
        before=before,
        after={**_annotation_json(annotation), "path": path},
    )
    return annotation


# -- gold labels and predictions ------------------------------------------------------


def set_gold(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    item_id: int,
    value: Any,
    rationale: str | None = None,
    source: str = "expert",
) -> GoldLabel:
    """Set (or replace) the accepted label of an item."""
    require(session, actor, Permission.GOLD_WRITE, project_id=project.id)
    item = get_item(session, project, item_id)
    schema = schema_of(project)
    errors = validate_value(schema, value, payload=item.payload)
    if errors:
        raise _fail(f"gold label of item {item.external_id!r} breaks the label schema", errors)
    value = canonical_value(schema, value)
    gold = session.scalar(select(GoldLabel).where(GoldLabel.item_id == item.id))
    before = None
    if gold is None:
        gold = GoldLabel(
            project_id=project.id, item_id=item.id, value=value, rationale=rationale, source=source
        )
        session.add(gold)
    else:
        before = {"value": gold.value, "rationale": gold.rationale, "source": gold.source}
        gold.value, gold.rationale, gold.source, gold.updated_at = (
            value,
            rationale,
            source,
            utcnow(),
        )
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="gold.set",
        entity_type="gold_label",
        entity_id=gold.id,
        project_id=project.id,
        before=before,
        after={"item_id": item.id, "value": value, "rationale": rationale, "source": source},
    )
    return gold


def _check_probabilities(schema: LabelSchema, probabilities: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    names = set(schema.label_names)
    if not names:
        return [
            Violation(
                "probabilities", "type", f"a {schema.task_type} schema has no labels to score"
            )
        ]
    for label, p in probabilities.items():
        field = f"probabilities.{label}"
        if label not in names:
            out.append(Violation(field, "unknown_label", f"unknown label {label!r}"))
        if (
            isinstance(p, bool)
            or not isinstance(p, int | float)
            or not math.isfinite(p)
            or not 0 <= p <= 1
        ):
            out.append(
                Violation(field, "out_of_range", f"expected a probability in [0, 1], got {p!r}")
            )
    if not out and schema.task_type == "single" and sum(probabilities.values()) > 1 + 1e-6:
        out.append(
            Violation(
                "probabilities", "out_of_range", "single-label probabilities sum to more than 1"
            )
        )
    return out


def add_prediction(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    item_id: int,
    model_name: str,
    model_version: str = "",
    value: Any = None,
    probabilities: Mapping[str, float] | None = None,
    score: float | None = None,
) -> Prediction:
    """Store (or replace) a model's prediction for an item.

    Without ``value``, single-label predictions take the most probable label and
    multi-label ones every label with probability >= 0.5.
    """
    require(session, actor, Permission.PREDICTION_WRITE, project_id=project.id)
    item = get_item(session, project, item_id)
    schema = schema_of(project)
    if not model_name:
        raise ValidationFailed(
            "model_name must not be empty",
            [Violation("model_name", "required", "must not be empty")],
        )
    errors: list[Violation] = []
    if probabilities is not None:
        errors += _check_probabilities(schema, probabilities)
    if value is None and probabilities and not errors:
        if schema.task_type == "single":
            value = max(probabilities, key=lambda k: probabilities[k])
        elif schema.task_type == "multi":
            value = sorted(k for k, p in probabilities.items() if p >= 0.5)
    if value is None:
        errors.append(Violation("value", "required", "give a value or class probabilities"))
    else:
        errors += validate_value(schema, value, payload=item.payload)
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
    ):
        errors.append(Violation("score", "type", f"expected a number, got {score!r}"))
    if errors:
        raise _fail(f"prediction for item {item.external_id!r} breaks the label schema", errors)
    value = canonical_value(schema, value)
    probs = dict(probabilities) if probabilities is not None else None
    pred = session.scalar(
        select(Prediction).where(
            Prediction.item_id == item.id,
            Prediction.model_name == model_name,
            Prediction.model_version == model_version,
        )
    )
    before = None
    if pred is None:
        pred = Prediction(
            project_id=project.id,
            item_id=item.id,
            model_name=model_name,
            model_version=model_version,
            value=value,
            probabilities=probs,
            score=score,
        )
        session.add(pred)
    else:
        before = {"value": pred.value, "probabilities": pred.probabilities, "score": pred.score}
        pred.value, pred.probabilities, pred.score = value, probs, score
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="prediction.set",
        entity_type="prediction",
        entity_id=pred.id,
        project_id=project.id,
        before=before,
        after={
            "item_id": item.id,
            "model_name": model_name,
            "model_version": model_version,
            "value": value,
            "probabilities": probs,
            "score": score,
        },
    )
    return pred


@dataclass(frozen=True)
class NewItem:
    """One item to add through :func:`add_items`."""

    external_id: str
    payload: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    segments: Mapping[str, Any] = field(default_factory=dict)
    tags: Sequence[str] = ()


#: Items per :func:`add_items` call.
MAX_NEW_ITEMS = 1000


def _item_fields(new: NewItem) -> dict[str, Any]:
    return {
        "payload": dict(new.payload),
        "meta": dict(new.metadata),
        "segments": dict(new.segments),
        "tags": sorted(set(new.tags)),
    }


def add_items(
    session: Session, *, actor: Actor, project: Project, items: Sequence[NewItem]
) -> list[tuple[Item, bool]]:
    """Find or add items by external id; all or nothing. Returns each item with whether
    it was created. An existing item with the same payload, metadata, segments and tags
    is returned unchanged (so a retried request writes nothing); one whose content
    differs is a :class:`Conflict` (items are not edited here). Every problem is
    reported with its field path (``items.3.external_id``)."""
    require(session, actor, Permission.DATA_IMPORT, project_id=project.id)
    problems: list[Violation] = []
    if not items:
        problems.append(Violation("items", "required", "give at least one item"))
    if len(items) > MAX_NEW_ITEMS:
        problems.append(
            Violation("items", "too_many", f"at most {MAX_NEW_ITEMS} items per request")
        )
    usable: list[str | None] = []
    for n, new in enumerate(items):
        ext = new.external_id
        if not ext or not ext.strip():
            problems.append(Violation(f"items.{n}.external_id", "required", "must not be empty"))
        elif len(ext) > 500:
            problems.append(
                Violation(f"items.{n}.external_id", "too_long", "at most 500 characters")
            )
        usable.append(ext if ext and ext.strip() and len(ext) <= 500 else None)
        for key, value in new.segments.items():
            if value is not None and not isinstance(value, str | int | float | bool):
                problems.append(
                    Violation(f"items.{n}.segments.{key}", "type", "a segment is a plain value")
                )
        for t, tag in enumerate(new.tags):
            if not isinstance(tag, str) or not tag.strip():
                problems.append(
                    Violation(f"items.{n}.tags.{t}", "type", "a tag is a non-empty string")
                )
    problems += repeated_ids(usable)
    if problems:
        problems.sort(key=item_position)
        raise _fail(f"items for project {project.name!r} are not valid", problems)
    # a concurrent request that adds the same items first makes this one a retry
    return retry_on_unique(session, lambda: _find_or_add(session, actor, project, items))


def repeated_ids(external_ids: Sequence[object]) -> list[Violation]:
    """``items.N.external_id`` violations for the external ids of a batch that repeat an
    earlier one (ids that are not non-empty strings are skipped)."""
    seen: dict[str, int] = {}
    out = []
    for n, ext in enumerate(external_ids):
        if not isinstance(ext, str) or not ext:
            continue
        if ext in seen:
            out.append(
                Violation(
                    f"items.{n}.external_id",
                    "duplicate",
                    f"{ext!r} repeats item {seen[ext]} of this request",
                )
            )
        else:
            seen[ext] = n
    return out


def item_position(v: Violation) -> int:
    """The batch position of an ``items.N...`` violation (-1 for the batch itself)."""
    parts = v.field.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1


def _find_or_add(
    session: Session, actor: Actor, project: Project, items: Sequence[NewItem]
) -> list[tuple[Item, bool]]:
    """The lookup-compare-insert step of :func:`add_items` (items already valid)."""
    existing: dict[str, Item] = {}
    keys = [new.external_id for new in items]
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        for item in session.scalars(
            select(Item).where(Item.project_id == project.id, Item.external_id.in_(chunk))
        ):
            existing[item.external_id] = item
    out: list[tuple[Item, bool]] = []
    for n, new in enumerate(items):
        found = existing.get(new.external_id)
        if found is None:
            continue
        wanted = _item_fields(new)
        have = {
            "payload": found.payload,
            "meta": found.meta or {},
            "segments": found.segments or {},
            "tags": sorted(found.tags or []),
        }
        if have != wanted:
            changed = ", ".join(
                k if k != "meta" else "metadata" for k in wanted if have[k] != wanted[k]
            )
            raise Conflict(
                f"item {new.external_id!r} (items.{n}) already exists in project "
                f"{project.name!r} with a different {changed}"
            )
    created: list[Item] = []
    for new in items:
        found = existing.get(new.external_id)
        if found is not None:
            out.append((found, False))
            continue
        item = Item(project_id=project.id, external_id=new.external_id, **_item_fields(new))
        created.append(item)
        out.append((item, True))
    # inserted in key order: two requests adding overlapping batches wait for each
    # other in the same order instead of deadlocking
    created.sort(key=lambda row: row.external_id)
    session.add_all(created)
    session.flush()
    for item in created:
        trail.service.append(
            session,
            actor=actor.name,
            action="item.create",
            entity_type="item",
            entity_id=item.id,
            project_id=project.id,
            after={"external_id": item.external_id, "segments": item.segments, "tags": item.tags},
        )
    return out


def import_batches(
    session: Session, *, actor: Actor, project: Project, limit: int = 100
) -> Sequence[ImportBatch]:
    """The project's imported files, newest first (whoever may import may see them)."""
    require(session, actor, Permission.DATA_IMPORT, project_id=project.id)
    return session.scalars(
        select(ImportBatch)
        .where(ImportBatch.project_id == project.id)
        .order_by(ImportBatch.created_at.desc(), ImportBatch.id.desc())
        .limit(limit)
    ).all()


__all__ = [
    "MAX_NEW_ITEMS",
    "NewItem",
    "add_item",
    "add_items",
    "add_prediction",
    "check_existing",
    "create_project",
    "get_item",
    "get_project",
    "import_batches",
    "list_projects",
    "project_summary",
    "schema_of",
    "set_gold",
    "submit_annotation",
    "update_schema",
]
