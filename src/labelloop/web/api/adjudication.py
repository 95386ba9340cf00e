"""``/api/v1``: disagreement cases, rulings, adjudication settings, guideline
amendments and the caller's inbox (included in :mod:`labelloop.web.api.v1`'s router).

The answers are the services' JSON (:meth:`CaseRow.as_json`, :func:`ruling_json`):
a case carries ``id, item, reason, priority, status, opened_at, due_at, level`` (the
role it waits on) and more; a ruling ``id, case, label, rationale, rules, gold,
exemplar, amendment, notable``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BeforeValidator, Field

from labelloop.accounts.roles import Permission
from labelloop.adjudication import rulings, service
from labelloop.adjudication.view import case_view, ruling_json
from labelloop.escalation import service as escalation
from labelloop.guidelines import amendments
from labelloop.identifiers import MAX_ID
from labelloop.web import queries
from labelloop.web.api.common import ERRORS, WRITE_ERRORS, Out, ProjectId, _created, project_of
from labelloop.web.api.schemas import Id, Identifier, Json, Reason, Text, _In, _integral
from labelloop.web.deps import CurrentActor, SessionDep, TransactionRoute, long_read
from labelloop.web.idempotency import IdempotencyDep

router = APIRouter(route_class=TransactionRoute, responses=ERRORS)

_ID = "An id (1 to 2^31-1)."
CaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="The case's id. " + _ID)]
RulingId = Annotated[int, Path(ge=1, le=MAX_ID, description="The ruling's id. " + _ID)]
AmendmentId = Annotated[int, Path(ge=1, le=MAX_ID, description="The amendment's id. " + _ID)]
RuleKey = Annotated[Identifier, Field(max_length=20, examples=["R12"])]


#: JSON Schema's integers include ``5.0``; the strict models take it as ``5``.
_INT = BeforeValidator(_integral)


class CaseIn(_In):
    item: Annotated[Identifier, Field(max_length=500)] = Field(
        description="The item's external id."
    )
    note: Annotated[Reason, Field(max_length=5000)] = Field(
        description="What is unclear about the item (required)."
    )


class RulingIn(_In):
    label: Json = Field(description="The final label (checked against the label schema).")
    rationale: Annotated[Text, Field(max_length=10000)] = Field(
        description="Why (required: at least the project's `rationale_min` characters, "
        "else 422 naming `rationale`)."
    )
    rules: list[RuleKey] = Field(
        [], max_length=50, description="Rules the ruling rests on (of the guideline)."
    )
    gold: bool = Field(False, description="Make the item gold with this label.")
    exemplar: RuleKey | None = Field(
        None, description="Propose the item as an exemplar of this rule (of the guideline)."
    )
    amend: Annotated[Text, Field(max_length=10000)] | None = Field(
        None, description="Propose this clarification of the first of `rules` (needs one)."
    )
    notable: bool = Field(False, description="Send it to the whole team in the digest.")


class SettingsIn(_In):
    """Fields left out (or null) keep their value; see docs/adjudication.md."""

    posterior_below: Annotated[float, Field(ge=0, le=1)] | None = None
    spread_min_votes: Annotated[int, Field(ge=2, le=1000), _INT] | None = None
    spread_max_share: Annotated[float, Field(ge=0, le=1)] | None = None
    model_consensus: Annotated[float, Field(ge=0, le=1)] | None = None
    model_confidence: Annotated[float, Field(ge=0, le=1)] | None = None
    rationale_min: Annotated[int, Field(ge=1, le=2000), _INT] | None = None
    sla_hours: Annotated[float, Field(ge=0.05, le=24 * 365)] | None = None
    anonymous: bool | None = None
    detect_minutes: Annotated[int, Field(ge=1, le=60 * 24 * 31), _INT] | None = None


class ReadIn(_In):
    ids: list[Id] | None = Field(
        None, max_length=1000, description="Notifications to mark read (null: all)."
    )


_ADJ = Permission.ADJUDICATE


@router.get("/projects/{project_id}/cases", tags=["adjudication"])
def list_cases(
    project_id: ProjectId,
    session: SessionDep,
    actor: CurrentActor,
    status: Annotated[Literal["open", "ruled", "all"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> Out:
    """Cases by priority (`adjudicate`): `{"cases": [...], "counts": {status: n}}`."""
    p = project_of(session, actor, project_id)
    rows = service.list_cases(
        session,
        actor=actor,
        project=p,
        status=None if status == "all" else status,
        limit=limit,
        offset=offset,
    )
    counts = service.count_cases(session, actor=actor, project=p)
    return Out(cases=[r.as_json() for r in rows], counts=counts)


@router.post(
    "/projects/{project_id}/cases", status_code=201, tags=["adjudication"], responses=WRITE_ERRORS
)
def open_case(
    project_id: ProjectId,
    body: CaseIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> Out:
    """Open a case on an item by hand (`adjudicate` or `audit.review`); 409 when the
    item already has an open case."""
    p = project_of(session, actor, project_id)
    case = service.open_case(session, actor=actor, project=p, item=body.item, note=body.note)
    row = service.case_row(session, case.id)
    return _created(idem, Out(**row.as_json()))  # type: ignore[return-value]


@router.post("/projects/{project_id}/cases/detect", tags=["adjudication"], responses=WRITE_ERRORS)
def detect_cases(
    request: Request, project_id: ProjectId, session: SessionDep, actor: CurrentActor
) -> Out:
    """Run case detection now (`adjudicate`): `{"opened", "candidates", "by_reason",
    "seconds"}`. Items with an open case or a ruling are left alone."""
    with long_read(request, session) as reader:
        p = project_of(reader, actor, project_id)
        r = service.detect_apart(reader=reader, session=session, actor=actor, project=p)
    return Out(opened=r.opened, candidates=r.candidates, by_reason=r.by_reason, seconds=r.seconds)


@router.get("/cases/{case_id}", tags=["adjudication"])
def get_case(case_id: CaseId, session: SessionDep, actor: CurrentActor) -> Out:
    """A case with what the adjudicator weighs: `votes` (label, count, annotators: null
    in anonymous mode), `prediction`, `posterior`, `rules`, `similar` rulings, and its
    `ruling` once ruled."""
    return Out(**case_view(session, actor=actor, case_id=case_id).as_json())


@router.post(
    "/cases/{case_id}/ruling", status_code=201, tags=["adjudication"], responses=WRITE_ERRORS
)
def rule_case(
    case_id: CaseId,
    body: RulingIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> Out:
    """Rule an open case (`adjudicate`): 422 naming the field (`rationale`, `label`,
    `rules[0]`, `exemplar`, `amend`) with nothing written; 409 when already ruled."""
    given = rulings.RulingInput(
        label=body.label,
        rationale=body.rationale,
        rules=body.rules,
        gold=body.gold,
        exemplar=body.exemplar,
        amend=body.amend,
        notable=body.notable,
    )
    ruling = rulings.rule(session, actor=actor, case_id=case_id, given=given)
    return _created(idem, Out(**ruling_json(ruling)))  # type: ignore[return-value]


@router.get("/projects/{project_id}/rulings", tags=["adjudication"])
def list_rulings(
    project_id: ProjectId,
    session: SessionDep,
    actor: CurrentActor,
    notable: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Out:
    """Rulings, newest first (any member): `{"rulings": [...]}`; `notable=true` gives
    the digest's."""
    p = project_of(session, actor, project_id)
    found = rulings.list_rulings(session, actor=actor, project=p, notable=notable, limit=limit)
    return Out(rulings=[{**ruling_json(r), "item": ext} for r, ext in found])


@router.get("/projects/{project_id}/rulings/{ruling_id}", tags=["adjudication"])
def get_ruling(
    project_id: ProjectId, ruling_id: RulingId, session: SessionDep, actor: CurrentActor
) -> Out:
    """One ruling (any member)."""
    p = project_of(session, actor, project_id)
    return Out(
        **ruling_json(rulings.get_ruling(session, actor=actor, project=p, ruling_id=ruling_id))
    )


@router.get("/projects/{project_id}/adjudication/settings", tags=["adjudication"])
def get_settings(project_id: ProjectId, session: SessionDep, actor: CurrentActor) -> Out:
    """Detection thresholds, rationale minimum, SLA, anonymity (`adjudicate`)."""
    p = queries.project_for(session, actor=actor, project_id=project_id, permission=_ADJ)
    return Out(**service.settings_json(service.settings_of(session, p)))


@router.patch(
    "/projects/{project_id}/adjudication/settings",
    tags=["adjudication"],
    responses=WRITE_ERRORS,
)
def update_settings(
    project_id: ProjectId, body: SettingsIn, session: SessionDep, actor: CurrentActor
) -> Out:
    """Change some settings (`project.manage`: leads); fields left out keep their value."""
    p = project_of(session, actor, project_id)
    changes = body.model_dump(exclude_none=True)
    cfg = service.update_settings(session, actor=actor, project=p, changes=changes)
    return Out(**service.settings_json(cfg))


@router.get("/projects/{project_id}/guidelines/amendments", tags=["guidelines"])
def list_amendments(
    project_id: ProjectId,
    session: SessionDep,
    actor: CurrentActor,
    status: Annotated[Literal["proposed", "accepted", "rejected", "all"], Query()] = "proposed",
) -> Out:
    """Proposed changes to rules (`adjudicate` or `guideline.edit`)."""
    p = project_of(session, actor, project_id)
    found = amendments.list_amendments(
        session, actor=actor, project=p, status=None if status == "all" else status
    )
    return Out(amendments=[{"id": a.id, **amendments.amendment_json(a)} for a in found])


@router.post(
    "/projects/{project_id}/guidelines/amendments/{amendment_id}/accept",
    tags=["guidelines"],
    responses=WRITE_ERRORS,
)
def accept_amendment(
    project_id: ProjectId, amendment_id: AmendmentId, session: SessionDep, actor: CurrentActor
) -> Out:
    """Apply an amendment to the draft (`guideline.edit`); 409 when already decided."""
    p = project_of(session, actor, project_id)
    a = amendments.accept(session, actor=actor, project=p, amendment_id=amendment_id)
    return Out(id=a.id, **amendments.amendment_json(a))


@router.post(
    "/projects/{project_id}/guidelines/amendments/{amendment_id}/reject",
    tags=["guidelines"],
    responses=WRITE_ERRORS,
)
def reject_amendment(
    project_id: ProjectId, amendment_id: AmendmentId, session: SessionDep, actor: CurrentActor
) -> Out:
    """Reject an amendment (`guideline.edit`); 409 when already decided."""
    p = project_of(session, actor, project_id)
    a = amendments.reject(session, actor=actor, project=p, amendment_id=amendment_id)
    return Out(id=a.id, **amendments.amendment_json(a))


@router.get("/notifications", tags=["inbox"])
def inbox(
    session: SessionDep,
    actor: CurrentActor,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Out:
    """The caller's notifications, newest first: `{"unread": n, "notifications": [...]}`."""
    found = escalation.inbox(session, actor=actor, unread_only=unread, limit=limit)
    return Out(
        unread=escalation.unread_count(session, actor=actor),
        notifications=[escalation.notification_json(n) for n in found],
    )


@router.post("/notifications/read", tags=["inbox"], responses=WRITE_ERRORS)
def mark_read(body: ReadIn, session: SessionDep, actor: CurrentActor) -> Out:
    """Mark the caller's notifications read (`ids`, or all): `{"marked": n}`."""
    return Out(marked=escalation.mark_read(session, actor=actor, ids=body.ids))
