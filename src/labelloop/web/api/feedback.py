"""``/api/v1/projects/{id}/feedback``: notes to annotators (write, edit, send), the
recipient's side (their notes, acknowledge, reply), and the effect statistics
(included in :mod:`labelloop.web.api.v1`'s router)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import Field

from labelloop.feedback import effect, lifecycle, service
from labelloop.identifiers import MAX_ID
from labelloop.web.api.common import ERRORS, WRITE_ERRORS, Out, ProjectId, _created, project_of
from labelloop.web.api.schemas import Id, Identifier, Reason, Text, _In
from labelloop.web.deps import CurrentActor, SessionDep, TransactionRoute
from labelloop.web.idempotency import IdempotencyDep

router = APIRouter(route_class=TransactionRoute, responses=ERRORS)

NoteId = Annotated[int, Path(ge=1, le=MAX_ID, description="The note's id (1 to 2^31-1).")]
Name = Annotated[Identifier, Field(max_length=50)]
Status = Literal["draft", "sent", "acknowledged", "resolved"]
Severity = Literal["low", "medium", "high", "critical"]


class NoteFields(_In):
    what_was_right: Annotated[Text, Field(max_length=5000)] | None = None
    what_to_change: Annotated[Text, Field(max_length=5000)] | None = None
    context: Annotated[Text, Field(max_length=5000)] | None = None
    indicator: Annotated[Text, Field(max_length=5000)] | None = None


class NoteIn(_In):
    recipient: Annotated[Identifier, Field(max_length=200)] = Field(
        description="The recipient's username (a member of the project)."
    )
    template: Name = Field(description="A built-in template or the project's own.")
    message: Annotated[Text, Field(max_length=10000)]
    items: list[Annotated[Identifier, Field(max_length=500)]] = Field([], max_length=200)
    severity: Severity = "medium"
    fields: NoteFields = Field(default_factory=NoteFields)
    rule_refs: list[Annotated[Identifier, Field(max_length=20)]] = Field([], max_length=50)


class NoteEdit(_In):
    template: Name | None = None
    severity: Severity | None = None
    message: Annotated[Text, Field(max_length=10000)] | None = None
    fields: NoteFields | None = None
    rule_refs: list[Annotated[Identifier, Field(max_length=20)]] | None = None


class SendIn(_In):
    ids: list[Id] = Field(..., min_length=1, max_length=10000)


class AckIn(_In):
    agree: bool
    reason: Annotated[Text, Field(max_length=5000)] | None = Field(
        None, description="Required when `agree` is false (opens an adjudication case)."
    )


class ReplyIn(_In):
    body: Annotated[Reason, Field(max_length=5000)]


def _fields(f: NoteFields | None) -> dict[str, Any]:
    return {} if f is None else {k: v for k, v in f.model_dump().items() if v is not None}


def _note(session: Any, actor: Any, project_id: int, note_id: int) -> Any:
    p = project_of(session, actor, project_id)
    note = service.get_note(session, actor=actor, note_id=note_id)
    if note.project_id != p.id:
        from labelloop.errors import NotFound

        raise NotFound(f"no feedback note {note_id}")
    return note


@router.get("/projects/{project_id}/feedback", tags=["feedback"])
def list_feedback(
    project_id: ProjectId,
    session: SessionDep,
    actor: CurrentActor,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Out:
    """The project's notes, newest first (`feedback.send`): `{"notes": [...]}`."""
    p = project_of(session, actor, project_id)
    notes = service.list_notes(session, actor=actor, project=p, status=status, limit=limit)
    return Out(notes=[service.note_json(n) for n in notes])


@router.get("/projects/{project_id}/feedback/mine", tags=["feedback"])
def my_feedback(project_id: ProjectId, session: SessionDep, actor: CurrentActor) -> Out:
    """The caller's own notes in the project, newest first: `{"notes", "unread"}`."""
    p = project_of(session, actor, project_id)
    notes = service.my_notes(session, actor=actor, project=p)
    return Out(
        notes=[service.note_json(n) for n in notes],
        unread=service.unread_count(session, actor=actor, project=p),
    )


@router.get("/projects/{project_id}/feedback/stats", tags=["feedback"])
def feedback_stats(
    project_id: ProjectId,
    session: SessionDep,
    actor: CurrentActor,
    window_days: Annotated[int, Query(ge=1, le=365)] = effect.WINDOW_DAYS,
) -> Out:
    """`sent`, `acknowledged`, `ack_rate`, `latency_hours` (`finding_to_sent`,
    `sent_to_ack`: `median`, `p90`) and `effect`: per template `{template, n_notes,
    before: {rate, ci}, after: {rate, ci}, p_value}` (`feedback.send`)."""
    p = project_of(session, actor, project_id)
    return Out(**effect.stats(session, actor=actor, project=p, window_days=window_days))


@router.post(
    "/projects/{project_id}/feedback", status_code=201, tags=["feedback"], responses=WRITE_ERRORS
)
def write_feedback(
    project_id: ProjectId,
    body: NoteIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> Out:
    """Write a draft (`feedback.send`); the template's required fields are checked
    (422 naming them, e.g. `what_was_right` for `positive`)."""
    p = project_of(session, actor, project_id)
    new = lifecycle.NewNote(
        recipient=body.recipient,
        template=body.template,
        message=body.message,
        items=tuple(body.items),
        severity=body.severity,
        fields=_fields(body.fields),
        rule_refs=tuple(body.rule_refs),
    )
    note = lifecycle.create(session, actor=actor, project=p, new=new)
    return _created(idem, Out(**service.note_json(note)))  # type: ignore[return-value]


@router.post("/projects/{project_id}/feedback/send", tags=["feedback"], responses=WRITE_ERRORS)
def send_feedback(
    project_id: ProjectId, body: SendIn, session: SessionDep, actor: CurrentActor
) -> Out:
    """Send drafts (`feedback.send`): `{"sent": [ids], "refused": {id: [{field,
    message}]}}` (refused drafts lack their template's fields, or were sent before)."""
    p = project_of(session, actor, project_id)
    r = lifecycle.send(session, actor=actor, project=p, note_ids=body.ids)
    refused = {
        str(k): [{"field": v.field, "message": v.message} for v in vs]
        for k, vs in r.refused.items()
    }
    return Out(sent=r.sent, refused=refused)


@router.get("/projects/{project_id}/feedback/notes/{note_id}", tags=["feedback"])
def get_feedback(
    project_id: ProjectId, note_id: NoteId, session: SessionDep, actor: CurrentActor
) -> Out:
    """A note with its items (the recipient's label, the reference and its source) and
    its replies (its recipient, or `feedback.send`)."""
    note = _note(session, actor, project_id, note_id)
    return Out(**service.note_json(note), replies=service.replies_json(session, note))


@router.patch(
    "/projects/{project_id}/feedback/notes/{note_id}", tags=["feedback"], responses=WRITE_ERRORS
)
def edit_feedback(
    project_id: ProjectId, note_id: NoteId, body: NoteEdit, session: SessionDep, actor: CurrentActor
) -> Out:
    """Change a draft (`feedback.send`; 409 once sent)."""
    _note(session, actor, project_id, note_id)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if "fields" in changes:
        changes["fields"] = _fields(body.fields)
    note = lifecycle.edit(session, actor=actor, note_id=note_id, changes=changes)
    return Out(**service.note_json(note))


@router.post(
    "/projects/{project_id}/feedback/notes/{note_id}/acknowledge",
    tags=["feedback"],
    responses=WRITE_ERRORS,
)
def acknowledge_feedback(
    project_id: ProjectId, note_id: NoteId, body: AckIn, session: SessionDep, actor: CurrentActor
) -> Out:
    """The recipient agrees, or disagrees with a `reason` (422 without one), which
    opens an adjudication case on the note's item (`case_id` in the answer)."""
    _note(session, actor, project_id, note_id)
    note = lifecycle.acknowledge(
        session, actor=actor, note_id=note_id, agree=body.agree, reason=body.reason
    )
    return Out(**service.note_json(note))


@router.post(
    "/projects/{project_id}/feedback/notes/{note_id}/replies",
    status_code=201,
    tags=["feedback"],
    responses=WRITE_ERRORS,
)
def reply_feedback(
    project_id: ProjectId,
    note_id: NoteId,
    body: ReplyIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> Out:
    """Add a message to the note's thread (its recipient, or `feedback.send`)."""
    _note(session, actor, project_id, note_id)
    r = lifecycle.reply(session, actor=actor, note_id=note_id, body=body.body)
    return _created(
        idem, Out(id=r.id, author=r.author, body=r.body, created_at=r.created_at.isoformat())
    )  # type: ignore[return-value]


@router.post(
    "/projects/{project_id}/feedback/notes/{note_id}/resolve",
    tags=["feedback"],
    responses=WRITE_ERRORS,
)
def resolve_feedback(
    project_id: ProjectId, note_id: NoteId, session: SessionDep, actor: CurrentActor
) -> Out:
    """Close a sent or acknowledged note (`feedback.send`)."""
    _note(session, actor, project_id, note_id)
    return Out(**service.note_json(lifecycle.resolve(session, actor=actor, note_id=note_id)))
