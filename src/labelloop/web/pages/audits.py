"""Audit pages: the runs of a project, a run with its report, and the review queue."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from labelloop.accounts.roles import Permission
from labelloop.audits import render as report_render
from labelloop.audits import service as audits
from labelloop.audits.schemas import SEVERITIES, ReviewInput
from labelloop.errors import Conflict, ValidationFailed
from labelloop.projects import service as projects
from labelloop.web import queries
from labelloop.web.deps import CurrentActor, CurrentUser, PathId, SessionDep, TransactionRoute
from labelloop.web.errors import details_of
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)

#: The stored report is a standalone document with its own inline style.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


@router.get("/projects/{project_id}/audits")
def audit_runs(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = queries.visible_project(session, actor=actor, project_id=project_id)
    runs = queries.runs_of_project(session, actor=actor, project=project)
    policies = {p.id: p for p in queries.policies_of(session, actor=actor, project=project)}
    rows = [
        {"run": r, "policy": policies.get(r.policy_id), "progress": audits.progress(session, r)}
        for r in runs
    ]
    return render(
        request,
        "audit_runs.html",
        {
            "project": project,
            "rows": rows,
            "can_manage": queries.may(session, actor, Permission.AUDIT_MANAGE, project.id),
        },
    )


@router.get("/audits/runs/{run_id}")
def audit_run(
    request: Request, run_id: PathId, session: SessionDep, actor: CurrentActor, user: CurrentUser
) -> Response:
    run = queries.run_for(session, actor=actor, run_id=run_id, permission=Permission.AUDIT_REVIEW)
    project = projects.get_project(session, run.project_id)
    mine = audits.queue_length(session, actor=actor, run=run) if run.status == "open" else 0
    return render(
        request,
        "audit_run.html",
        {
            "project": project,
            "run": run,
            "progress": audits.progress(session, run),
            "my_open": mine,
            "can_manage": queries.may(session, actor, Permission.AUDIT_MANAGE, project.id),
        },
    )


@router.get("/audits/runs/{run_id}/report")
def audit_report(
    request: Request, run_id: PathId, session: SessionDep, actor: CurrentActor, user: CurrentUser
) -> Response:
    """The stored report of a closed run as a standalone HTML document (leads)."""
    run = queries.run_for(session, actor=actor, run_id=run_id, permission=Permission.AUDIT_MANAGE)
    if not run.report:
        raise Conflict(f"audit run {run.id} has no report (it is {run.status})")
    return HTMLResponse(
        report_render.to_html(run.report), headers={"Content-Security-Policy": REPORT_CSP}
    )


def _queue_context(
    session: Any, actor: Any, run_id: PathId, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    run = queries.run_for(session, actor=actor, run_id=run_id, permission=Permission.AUDIT_REVIEW)
    project = projects.get_project(session, run.project_id)
    is_open = run.status == "open"
    # only the next item is loaded; the queue's order is the service's (see queue_keys)
    entries = audits.review_queue(session, actor=actor, run=run, limit=1) if is_open else []
    schema = projects.schema_of(project)
    return {
        "project": project,
        "run": run,
        "entry": entries[0] if entries else None,
        "remaining": audits.queue_length(session, actor=actor, run=run) if is_open else 0,
        "progress": audits.progress(session, run),
        "blind": bool(run.policy_snapshot.get("blind", True)),
        "labels": schema.label_names,
        "task_type": schema.task_type,
        "categories": run.policy_snapshot.get("error_categories") or [],
        "severities": SEVERITIES,
        "errors": errors or [],
    }


@router.get("/audits/runs/{run_id}/queue")
def review_queue(
    request: Request, run_id: PathId, session: SessionDep, actor: CurrentActor, user: CurrentUser
) -> Response:
    return render(request, "review_queue.html", _queue_context(session, actor, run_id))


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _label_value(raw: str | None, task_type: str) -> Any:
    raw = _blank(raw)
    if raw is None:
        return None
    if task_type == "single":
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


@router.post("/audits/runs/{run_id}/queue/{assignment_id}")
def submit_review(
    request: Request,
    run_id: PathId,
    assignment_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    verdict: Annotated[str, Form()],
    label: Annotated[str | None, Form()] = None,
    error_category: Annotated[str | None, Form()] = None,
    severity: Annotated[str | None, Form()] = None,
    rule_ref: Annotated[str | None, Form(max_length=200)] = None,
    comment: Annotated[str | None, Form(max_length=10_000)] = None,
    active_seconds: Annotated[float | None, Form(ge=0)] = None,
) -> Response:
    run = queries.run_for(session, actor=actor, run_id=run_id, permission=Permission.AUDIT_REVIEW)
    project = projects.get_project(session, run.project_id)
    task_type = projects.schema_of(project).task_type
    htmx = request.headers.get("hx-request") == "true"
    try:
        try:
            review = ReviewInput(
                verdict=verdict,
                corrected_value=_label_value(label, task_type),
                error_category=_blank(error_category),
                severity=_blank(severity),
                rule_ref=_blank(rule_ref),
                comment=_blank(comment),
                active_seconds=active_seconds,
            )
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'review'}: {e['msg']}"
                for e in exc.errors()
            ]
            raise ValidationFailed("the review is not complete", problems) from None
        audits.record_review(session, actor=actor, assignment_id=assignment_id, review=review)
    except ValidationFailed as exc:
        session.rollback()
        ctx = _queue_context(session, actor, run_id, details_of(exc) or [{"message": str(exc)}])
        return render(
            request, "_review_panel.html" if htmx else "review_queue.html", ctx, status_code=422
        )
    if htmx:
        session.flush()
        return render(request, "_review_panel.html", _queue_context(session, actor, run_id))
    return RedirectResponse(f"/audits/runs/{run_id}/queue", status_code=303)
