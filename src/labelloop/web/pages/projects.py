"""The project list and the lead's project overview."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from labelloop.accounts.roles import Permission
from labelloop.projects import service as projects
from labelloop.web import dashboard, queries
from labelloop.web.deps import CurrentActor, CurrentUser, SessionDep
from labelloop.web.templating import render

router = APIRouter()


@router.get("/")
def project_list(
    request: Request, session: SessionDep, actor: CurrentActor, user: CurrentUser
) -> Response:
    rows = []
    for p in queries.visible_projects(session, actor=actor):
        rows.append(
            {
                "project": p,
                "summary": projects.project_summary(session, p),
                "roles": queries.my_roles(session, actor=actor, project_id=p.id),
                "can_manage": queries.may(session, actor, Permission.PROJECT_MANAGE, p.id),
                "can_review": queries.may(session, actor, Permission.AUDIT_REVIEW, p.id),
            }
        )
    return render(request, "projects.html", {"rows": rows})


@router.get("/projects/{project_id}")
def project_overview(
    request: Request, project_id: int, session: SessionDep, actor: CurrentActor, user: CurrentUser
) -> Response:
    project = projects.get_project(session, project_id)
    overview = dashboard.project_overview(session, actor=actor, project=project)
    return render(
        request,
        "overview.html",
        {
            "project": project,
            "ov": overview,
            "can_review": queries.may(session, actor, Permission.AUDIT_REVIEW, project.id),
        },
    )
