"""The project list and the lead's project overview: the stored dashboard snapshot
(charts, scorecard, feedback) and, live, SLA attainment."""

from __future__ import annotations

import threading
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from labelloop.accounts.roles import Permission
from labelloop.analytics import loop
from labelloop.analytics import service as analytics
from labelloop.analytics.models import DashboardSnapshot
from labelloop.analytics.schemas import Overview
from labelloop.escalation.attainment import sla_attainment
from labelloop.projects import service as projects
from labelloop.projects.models import Project
from labelloop.web import queries
from labelloop.web.deps import CurrentActor, CurrentUser, PathId, SessionDep, TransactionRoute
from labelloop.web.pages.cases import may_open, open_cases
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)


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
                "can_label": queries.may(session, actor, Permission.ANNOTATE, p.id),
                "can_adjudicate": queries.may(session, actor, Permission.ADJUDICATE, p.id),
                "can_open": may_open(session, actor, p.id),
            }
        )
    return render(request, "projects.html", {"rows": rows})


@router.get("/projects/{project_id}")
def project_overview(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = queries.visible_project(session, actor=actor, project_id=project_id)
    snap, freshness = analytics.current_snapshot(session, actor=actor, project=project)
    totals, dashboard = _dashboard(request, project, snap)
    sla = loop.sla_chart(sla_attainment(session, actor=actor, project=project))
    return render(
        request,
        "overview.html",
        {
            "project": project,
            "totals": totals,
            "dashboard": dashboard,
            "sla": sla,
            "freshness": freshness,
            "can_review": queries.may(session, actor, Permission.AUDIT_REVIEW, project.id),
            "can_adjudicate": queries.may(session, actor, Permission.ADJUDICATE, project.id),
            "can_open": may_open(session, actor, project.id),
            "open_cases": open_cases(session, actor, project),
        },
    )


DASHBOARD_CACHE_SIZE = 32
_CACHE_LOCK = threading.Lock()


def _dashboard(
    request: Request, project: Project, snap: DashboardSnapshot
) -> tuple[dict[str, int], Markup]:
    """The totals and the rendered charts and scorecard of a snapshot. Snapshots never
    change once stored, so the HTML is rendered once per snapshot and kept (per app, the
    newest :data:`DASHBOARD_CACHE_SIZE`): a page view then costs two index lookups."""
    key = (snap.id, snap.computed_at)
    with _CACHE_LOCK:  # routes run on many worker threads
        cache: dict[tuple[int, datetime], tuple[dict[str, int], Markup]] | None = getattr(
            request.app.state, "dashboards", None
        )
        if cache is None:
            cache = request.app.state.dashboards = {}
        hit = cache.get(key)
    if hit is not None:
        return hit
    overview = Overview.from_payload(project, snap.payload)
    templates: Jinja2Templates = request.app.state.templates
    html = Markup(templates.get_template("_dashboard.html").render(ov=overview))
    with _CACHE_LOCK:
        while len(cache) >= DASHBOARD_CACHE_SIZE:
            cache.pop(next(iter(cache)), None)
        cache[key] = (overview.totals, html)
    return overview.totals, html


@router.post("/projects/{project_id}/dashboard/refresh")
def refresh_dashboard(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    """Recompute the project's dashboard now (leads), then show it."""
    project = queries.visible_project(session, actor=actor, project_id=project_id)
    analytics.refresh_snapshot(session, actor=actor, project=project)
    return RedirectResponse(f"/projects/{project.id}", status_code=303)
