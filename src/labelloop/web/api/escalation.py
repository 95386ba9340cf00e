"""``/api/v1``: what waits on someone and the project's escalation paths (included in
:mod:`labelloop.web.api.v1`'s router; see :mod:`labelloop.escalation.paths`).

A deadline carries ``id, subject, subject_id, title, link, owner, level, path,
started_at, due_at, escalated_at, overdue_minutes``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import Field

from labelloop.escalation import paths as escalation_paths
from labelloop.escalation import service as escalation
from labelloop.store.base import utcnow
from labelloop.web.api.common import ERRORS, WRITE_ERRORS, Out, ProjectId, project_of
from labelloop.web.api.schemas import Text, _In
from labelloop.web.deps import CurrentActor, SessionDep, TransactionRoute

router = APIRouter(route_class=TransactionRoute, responses=ERRORS)

Subject = Annotated[
    Literal["case", "flag", "audit_run", "feedback"],
    Path(description="What waits: `case`, `flag`, `audit_run` or `feedback`."),
]


#: ``role:SLA`` levels separated by commas (roles and ranges are checked by the service).
LEVELS = r"^\s*[a-z_]+\s*:\s*\d+(\.\d+)?\s*(m|h|d|bd)\s*([,;]\s*[a-z_]+\s*:\s*\d+(\.\d+)?\s*(m|h|d|bd)\s*)*$"


class PathIn(_In):
    levels: Annotated[Text, Field(max_length=500, pattern=LEVELS)] | None = Field(
        description="Levels as `role:SLA, ...` (SLA like `30m`, `24h`, `2d`, `5bd`); "
        "null puts the default back.",
        examples=["auditor:24h, adjudicator:48h, lead:5bd"],
    )


@router.get("/projects/{project_id}/escalation/overdue", tags=["escalation"])
def overdue(
    project_id: ProjectId,
    session: SessionDep,
    actor: CurrentActor,
    all: Annotated[bool, Query(description="Also what is still within its SLA.")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 500,
) -> Out:
    """What waits past its deadline, most overdue first (`project.manage`):
    `{"deadlines": [...]}`."""
    p = project_of(session, actor, project_id)
    now = utcnow()
    found = escalation.waiting(
        session, actor=actor, project_id=p.id, overdue_only=not all, now=now, limit=limit
    )
    return Out(deadlines=[escalation.deadline_json(d, now) for d in found])


@router.get("/projects/{project_id}/escalation/paths", tags=["escalation"])
def get_paths(project_id: ProjectId, session: SessionDep, actor: CurrentActor) -> Out:
    """Every subject's path: `{subject: {"levels": "role:SLA, ...", "default": bool}}`."""
    p = project_of(session, actor, project_id)
    return Out(**escalation_paths.paths(session, actor=actor, project_id=p.id))


@router.put(
    "/projects/{project_id}/escalation/paths/{subject}",
    tags=["escalation"],
    responses=WRITE_ERRORS,
)
def put_path(
    project_id: ProjectId,
    subject: Subject,
    body: PathIn,
    session: SessionDep,
    actor: CurrentActor,
) -> Out:
    """Set a subject's path, or put the default back with `levels: null`
    (`project.manage`); 422 naming the level that is wrong."""
    p = project_of(session, actor, project_id)
    escalation_paths.set_path(
        session, actor=actor, project_id=p.id, subject=subject, spec=body.levels
    )
    return Out(**escalation_paths.paths(session, actor=actor, project_id=p.id)[subject])
