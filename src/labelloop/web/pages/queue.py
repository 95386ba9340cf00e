"""The lead's queue settings page: overlap (labels per item), hidden gold rate and lease
length of a project's annotator workbench."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from labelloop.accounts.roles import Permission
from labelloop.web import queries
from labelloop.web.deps import CurrentActor, CurrentUser, PathId, SessionDep, TransactionRoute
from labelloop.web.templating import render
from labelloop.workbench import service as workbench
from labelloop.workbench.schemas import SettingsIn

router = APIRouter(route_class=TransactionRoute)

Number = Annotated[str, Form(max_length=20)]


def _page(
    request: Request,
    project: Any,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "queue_settings.html",
        {"project": project, "v": values, "errors": errors or {}, "notice": notice},
        status_code=status_code,
    )


@router.get("/projects/{project_id}/queue")
def queue_settings(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    saved: bool = False,
) -> Response:
    project = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.PROJECT_MANAGE
    )
    current = workbench.get_settings(session, project).model_dump()
    return _page(request, project, current, notice="Saved." if saved else None)


@router.post("/projects/{project_id}/queue")
def update_queue_settings(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    overlap: Number = "",
    gold_rate: Number = "",
    lease_minutes: Number = "",
) -> Response:
    project = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.PROJECT_MANAGE
    )
    values = {"overlap": overlap, "gold_rate": gold_rate, "lease_minutes": lease_minutes}
    try:
        change = SettingsIn.model_validate({k: v.strip() or None for k, v in values.items()})
    except ValidationError as exc:
        errors = {str(e["loc"][0]): e["msg"] for e in exc.errors() if e["loc"]}
        return _page(request, project, values, errors, status_code=422)
    workbench.update_settings(session, actor=actor, project=project, change=change)
    return RedirectResponse(f"/projects/{project.id}/queue?saved=1", status_code=303)
