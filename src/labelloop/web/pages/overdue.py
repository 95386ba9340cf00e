"""The lead's page of what waits on someone: overdue deadlines first (how late, whose
level), then what is still within its SLA, and the project's escalation paths with a
form to change them (:mod:`labelloop.escalation.paths`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Permission
from labelloop.errors import ValidationFailed
from labelloop.escalation import paths as escalation_paths
from labelloop.escalation import service as escalation
from labelloop.projects.models import Project
from labelloop.store.base import utcnow
from labelloop.web import queries
from labelloop.web.deps import CurrentActor, CurrentUser, PathId, SessionDep, TransactionRoute
from labelloop.web.pages.inbox import safe_link
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)

SUBJECT_NAMES = {
    "case": "Adjudication cases",
    "flag": "Items flagged as uncertain",
    "audit_run": "Unreviewed audit units",
    "feedback": "Disputed feedback without an item",
}


def _manage(session: Session, actor: Actor, project_id: int) -> Project:
    return queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.PROJECT_MANAGE
    )


def _page(
    request: Request,
    session: Session,
    actor: Actor,
    project: Project,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    now = utcnow()
    rows = [
        {**escalation.deadline_json(d, now), "href": safe_link(d.link), "d": d}
        for d in escalation.waiting(session, actor=actor, project_id=project.id, now=now)
    ]
    current = escalation_paths.paths(session, actor=actor, project_id=project.id)
    return render(
        request,
        "overdue.html",
        {
            "project": project,
            # due_at <= now, as the worker, the API and SLA attainment count it
            "overdue": [r for r in rows if r["d"].due_at <= now],
            "upcoming": [r for r in rows if r["d"].due_at > now],
            "paths": current,
            "values": values or {s: p["levels"] for s, p in current.items()},
            "errors": errors or {},
            "names": SUBJECT_NAMES,
            "notice": notice,
        },
        status_code=status_code,
    )


@router.get("/projects/{project_id}/overdue")
def overdue_page(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    saved: bool = False,
) -> Response:
    project = _manage(session, actor, project_id)
    return _page(request, session, actor, project, notice="Saved." if saved else None)


@router.post("/projects/{project_id}/escalation/paths")
def save_path(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    subject: Annotated[str, Form(max_length=50)],
    levels: Annotated[str, Form(max_length=500)] = "",
    reset: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    project = _manage(session, actor, project_id)
    spec = None if reset == "1" else levels
    try:
        escalation_paths.set_path(
            session, actor=actor, project_id=project.id, subject=subject, spec=spec
        )
    except ValidationFailed as exc:
        session.rollback()
        project = _manage(session, actor, project_id)
        current = escalation_paths.paths(session, actor=actor, project_id=project.id)
        values: dict[str, Any] = {s: p["levels"] for s, p in current.items()} | {subject: levels}
        return _page(
            request,
            session,
            actor,
            project,
            values=values,
            errors={subject: str(exc)},
            status_code=422,
        )
    return RedirectResponse(f"/projects/{project.id}/overdue?saved=1#paths", status_code=303)
