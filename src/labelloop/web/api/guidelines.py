"""``/api/v1/projects/{id}/guidelines``: read versions and diffs, write the draft,
publish, acknowledge, and the re-check list of a change (included in
:mod:`labelloop.web.api.v1`'s router)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, ValidationError

from labelloop.errors import ValidationFailed
from labelloop.guidelines import recheck, service
from labelloop.guidelines.models import GuidelineVersion
from labelloop.guidelines.schemas import (
    MAX_EXEMPLARS,
    MAX_RULES,
    MAX_TEXT,
    RULE_KEY,
    VERSION,
    GuidelineDoc,
)
from labelloop.projects.validation import Violation
from labelloop.web import queries
from labelloop.web.api.common import WRITE_ERRORS, ProjectId, _created
from labelloop.web.api.schemas import Identifier, Json, Reason, Text, _In
from labelloop.web.deps import CurrentActor, SessionDep, TransactionRoute
from labelloop.web.idempotency import IdempotencyDep

router = APIRouter(route_class=TransactionRoute)

VERSION_PATTERN = rf"^({VERSION.pattern}|draft)$"
VersionParam = Annotated[
    str,
    Field(
        pattern=VERSION_PATTERN,
        max_length=13,
        description="A version number (1.2) or `draft` (editors only).",
        examples=["1.0"],
    ),
]


RULE_ID_PATTERN = f"^{RULE_KEY.pattern}$"
RuleId = Annotated[str, Field(pattern=RULE_ID_PATTERN, examples=["R12"])]
PublishedVersion = Annotated[
    str,
    Field(
        pattern=f"^{VERSION.pattern}$",
        max_length=13,
        description="A published version number (1.2).",
        examples=["1.0"],
    ),
]


class ExemplarIn(_In):
    item: Annotated[Identifier, Field(max_length=500)] = Field(
        description="The item's external id."
    )
    kind: Literal["positive", "negative", "boundary"]
    label: Json = Field(description="The correct label (checked against the label schema).")
    why: Annotated[Text, Field(max_length=2000)] = ""


class RuleIn(_In):
    id: RuleId
    title: Annotated[Identifier, Field(max_length=200)]
    text: Annotated[Text, Field(max_length=MAX_TEXT)] = Field("", description="Markdown.")
    labels: list[Identifier] = Field([], description="Labels of the project's schema.")
    exemplars: list[ExemplarIn] = Field([], max_length=MAX_EXEMPLARS)


class GuidelineIn(_In):
    """A guideline document (the shape `labelloop guidelines import` reads as YAML).
    Rule ids are unique within it; labels and exemplars are checked against the
    project (422 naming the field)."""

    title: Annotated[Identifier, Field(max_length=200)]
    preamble: Annotated[Text, Field(max_length=MAX_TEXT)] = Field("", description="Markdown.")
    rules: list[RuleIn] = Field([], max_length=MAX_RULES)

    def document(self) -> GuidelineDoc:
        """As the domain's document (ValidationFailed naming the field, e.g. a rule id
        used twice)."""
        try:
            return GuidelineDoc.model_validate(self.model_dump(mode="json"))
        except ValidationError as exc:
            problems = []
            for err in exc.errors(include_url=False):
                message = err["msg"].removeprefix("Value error, ")
                field = ".".join(str(p) for p in err["loc"])
                if ": " in message and not field:
                    field, message = message.split(": ", 1)
                problems.append(Violation(field, err["type"], message))
            raise ValidationFailed("invalid guideline", problems) from None


class VersionOut(BaseModel):
    version: str
    title: str
    note: str | None
    published_at: datetime | None
    published_by: str | None
    rules: int
    acknowledged_by: int


class GuidelineOut(BaseModel):
    version: str
    published_at: datetime | None
    note: str | None
    document: GuidelineDoc


class RuleBrief(BaseModel):
    id: str
    title: str
    labels: list[str]


class RuleChangeOut(BaseModel):
    id: str
    title: str
    fields: list[str] = Field(description="Which of title, text, labels, exemplars changed.")
    text_diff: str = Field(description="A unified diff of the rule's text ('' when unchanged).")
    labels: list[str] = Field(description="The rule's labels, before and after.")


class TitleChange(BaseModel):
    model_config = {"populate_by_name": True}

    from_: str = Field(alias="from")
    to: str


class DiffOut(BaseModel):
    model_config = {"populate_by_name": True}

    from_: str | None = Field(alias="from", description="null: compared with nothing.")
    to: str | None
    added: list[RuleBrief]
    removed: list[RuleBrief]
    changed: list[RuleChangeOut]
    title: TitleChange | None
    preamble_diff: str


class PendingOut(BaseModel):
    """The version the caller must acknowledge before their next item, and what changed
    since the last one they acknowledged (``changes.from`` null: they have read none)."""

    version: str | None
    changes: DiffOut | None


class PublishIn(_In):
    note: Annotated[Reason, Field(max_length=5000)] = Field(
        ..., description="What changed and why (required)."
    )
    major: bool = False


class AcknowledgeIn(_In):
    version: VersionParam


class AcknowledgeOut(BaseModel):
    version: str
    acknowledged_at: datetime


class RecheckRuleOut(BaseModel):
    id: str
    title: str
    change: Literal["added", "removed", "changed", "unchanged"]
    labels: list[str] = Field(description="The rule's labels, in either version.")
    exemplar_labels: list[str] = Field(
        description="Labels of its exemplars (either version) that are not among `labels`."
    )
    annotations: int = Field(description="Listed annotations that concern the rule.")


class RecheckEntryOut(BaseModel):
    id: int = Field(description="The annotation's id.")
    item: str = Field(description="The item's external id.")
    annotator: str
    label: Any = Field(description="The annotation's label value.")
    guideline_version: str | None
    submitted_at: datetime | None
    reason: Literal["exemplar", "rule_label", "exemplar_label"]
    rules: list[str] = Field(description="The concerned rules it concerns.")


class RecheckOut(BaseModel):
    """Past annotations a guideline change may affect (docs/guidelines.md, "Re-check
    list"): counts over the whole list, and its first `limit` annotations, likeliest
    affected first."""

    model_config = {"populate_by_name": True}

    from_: str | None = Field(alias="from", description="null: compared with nothing.")
    to: str
    rule: str | None
    total: int
    rules: list[RecheckRuleOut]
    labels: dict[str, int] = Field(description="Listed annotations per label they concern.")
    reasons: dict[str, int] = Field(description="Listed annotations per reason.")
    annotations: list[RecheckEntryOut]
    truncated: bool = Field(description="True when `annotations` holds fewer than `total`.")


class RecheckIn(_In):
    rule: RuleId | None = Field(None, description="Only this rule; default every changed one.")
    from_: PublishedVersion | None = Field(
        None, alias="from", description="Default: the version published before `to`."
    )
    to: PublishedVersion | None = Field(None, description="Default: the current version.")
    sample: int = Field(
        recheck.DEFAULT_SAMPLE,
        ge=1,
        le=recheck.MAX_SAMPLE,
        description="How many of the list to review (all of it when shorter).",
    )


class RecheckSentOut(BaseModel):
    run_id: int = Field(description="The audit run reviewing the re-check list.")
    policy_id: int
    policy: str = Field(description="The re-check policy, e.g. `Re-check R4 (1.0 → 1.1)`.")
    created: bool = Field(description="False: this re-check was sent before, to this run.")
    population: int = Field(description="Annotations in the re-check list.")
    sample: int = Field(description="Annotations drawn for review.")
    notes: list[str]


def _version_out(session: Any, v: GuidelineVersion) -> VersionOut:
    return VersionOut(
        version=v.number,
        title=v.title,
        note=v.note,
        published_at=v.published_at,
        published_by=v.published_by,
        rules=len(v.rules),
        acknowledged_by=service.acknowledged_by(session, v),
    )


def _diff_out(data: dict[str, Any]) -> DiffOut:
    return DiffOut.model_validate(data)


@router.get("/projects/{project_id}/guidelines", tags=["guidelines"])
def get_guideline(
    project_id: ProjectId,
    session: SessionDep,
    actor: CurrentActor,
    version: Annotated[VersionParam | None, Query()] = None,
) -> GuidelineOut:
    """A version of the project's guideline (default the current one): its rules with
    their Markdown text, labels and exemplars (items by external id)."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    v = service.get_version(session, actor=actor, project=p, number=version)
    return GuidelineOut(
        version=v.number,
        published_at=v.published_at,
        note=v.note,
        document=service.document(session, v),
    )


@router.get("/projects/{project_id}/guidelines/versions", tags=["guidelines"])
def list_guideline_versions(
    project_id: ProjectId, session: SessionDep, actor: CurrentActor
) -> list[VersionOut]:
    """Published versions, newest first, with change notes and acknowledgement counts."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    return [_version_out(session, v) for v in service.history(session, actor=actor, project=p)]


@router.get("/projects/{project_id}/guidelines/diff", tags=["guidelines"])
def diff_guideline(
    project_id: ProjectId,
    session: SessionDep,
    actor: CurrentActor,
    from_: Annotated[VersionParam | None, Query(alias="from")] = None,
    to: Annotated[VersionParam | None, Query()] = None,
) -> DiffOut:
    """Rules added, removed and changed between two versions, with a text diff per
    changed rule (keys `from`, `to`, `added`, `removed`, `changed`); `to` defaults to
    the current version and `from` to the one published before it."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    d = service.diff(session, actor=actor, project=p, old=from_, new=to)
    return _diff_out(d.as_json())


@router.put("/projects/{project_id}/guidelines/draft", tags=["guidelines"], responses=WRITE_ERRORS)
def save_guideline_draft(
    project_id: ProjectId,
    body: GuidelineIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> VersionOut:
    """Replace the draft with this document (`guideline.edit`: leads). Every label must
    be in the schema and every exemplar's item must exist (422 naming the field)."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    draft = service.save_draft(session, actor=actor, project=p, doc=body.document())
    return _created(idem, _version_out(session, draft), 200)  # type: ignore[return-value]


@router.delete(
    "/projects/{project_id}/guidelines/draft",
    status_code=204,
    tags=["guidelines"],
    responses=WRITE_ERRORS,
)
def discard_guideline_draft(
    project_id: ProjectId, session: SessionDep, actor: CurrentActor
) -> None:
    """Discard the draft (`guideline.edit`; 404 when there is none)."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    service.discard_draft(session, actor=actor, project=p)


@router.post(
    "/projects/{project_id}/guidelines/publish",
    status_code=201,
    tags=["guidelines"],
    responses=WRITE_ERRORS,
)
def publish_guideline(
    project_id: ProjectId,
    body: PublishIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> VersionOut:
    """Publish the draft as the next version (`major`: MAJOR+1.0); 409 without a draft
    or when it equals the current version."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    v = service.publish(session, actor=actor, project=p, note=body.note, major=body.major)
    return _created(idem, _version_out(session, v))  # type: ignore[return-value]


@router.get("/projects/{project_id}/guidelines/pending", tags=["guidelines"])
def pending_guideline(
    project_id: ProjectId, session: SessionDep, actor: CurrentActor
) -> PendingOut:
    """What the caller must read before the queue serves them again (`version` null:
    nothing; `work/next` answers 409 `guideline_unacknowledged` until they do)."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    found = service.pending(session, actor=actor, project=p)
    if found is None:
        return PendingOut(version=None, changes=None)
    return PendingOut(version=found.version.number, changes=_diff_out(found.changes.as_json()))


@router.post(
    "/projects/{project_id}/guidelines/acknowledge", tags=["guidelines"], responses=WRITE_ERRORS
)
def acknowledge_guideline(
    project_id: ProjectId,
    body: AcknowledgeIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> AcknowledgeOut:
    """Record that the caller has read this version (idempotent)."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    ack = service.acknowledge(session, actor=actor, project=p, number=body.version)
    out = AcknowledgeOut(version=body.version, acknowledged_at=ack.acknowledged_at)
    return _created(idem, out, 200)  # type: ignore[return-value]


@router.get("/projects/{project_id}/guidelines/recheck", tags=["guidelines"])
def recheck_guideline(
    project_id: ProjectId,
    session: SessionDep,
    actor: CurrentActor,
    rule: Annotated[RuleId | None, Query(description="Only this rule.")] = None,
    from_: Annotated[PublishedVersion | None, Query(alias="from")] = None,
    to: Annotated[PublishedVersion | None, Query()] = None,
    limit: Annotated[int, Query(ge=0, le=recheck.MAX_LIMIT)] = recheck.DEFAULT_LIMIT,
) -> RecheckOut:
    """The re-check list of a change (`data.export`: leads and model accounts): the
    annotations made before `to` (default the current version) that concern a rule
    changed since `from` (default the version before `to`), or `rule` alone, by their
    labels or their rules' exemplars. 404 for a version or rule that does not exist."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    found = recheck.recheck(
        session, actor=actor, project=p, rule=rule, from_version=from_, to_version=to, limit=limit
    )
    return RecheckOut.model_validate(found.as_json())


def _sent_out(sent: recheck.Sent) -> RecheckSentOut:
    return RecheckSentOut(
        run_id=sent.run.id,
        policy_id=sent.policy.id,
        policy=sent.policy.name,
        created=sent.created,
        population=sent.run.population_size,
        sample=sent.run.sample_size,
        notes=sent.notes,
    )


@router.post(
    "/projects/{project_id}/guidelines/recheck",
    status_code=201,
    tags=["guidelines"],
    responses={
        **WRITE_ERRORS,
        201: {"model": RecheckSentOut, "description": "The audit run, opened now"},
        200: {"model": RecheckSentOut, "description": "The run this re-check was sent to before"},
    },
)
def send_guideline_recheck(
    project_id: ProjectId,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
    body: RecheckIn | None = None,
) -> RecheckSentOut:
    """Send the re-check list to review (`audit.manage`: leads): an audit run of the
    change's manual re-check policy (created on first use) over the whole list,
    reviewing a seeded random sample of `sample`. The same re-check sent again answers
    200 with its first run. 422 when the list is empty or no reviewer may review it."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    args = body or RecheckIn()
    sent = recheck.send(
        session,
        actor=actor,
        project=p,
        rule=args.rule,
        from_version=args.from_,
        to_version=args.to,
        sample=args.sample,
    )
    return _created(idem, _sent_out(sent), 201 if sent.created else 200)  # type: ignore[return-value]
