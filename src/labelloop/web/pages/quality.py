"""``/projects/{id}/quality``: "My quality" for the signed-in annotator (accuracy against
gold and against audits, their confusions, the trend by ISO week, where they stand in
the team, their notes); leads, reviewers and mentors may read a member's page with
``?user=USERNAME``. The figures come from :func:`labelloop.feedback.quality.my_quality`,
which checks who may read whose.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from labelloop.accounts.roles import Permission
from labelloop.analytics.schemas import Chart
from labelloop.feedback import quality
from labelloop.web import queries
from labelloop.web.deps import CurrentActor, CurrentUser, PathId, SessionDep, TransactionRoute
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _ci(ci: list[float] | None) -> str:
    return "–" if ci is None else f"{ci[0] * 100:.1f}–{ci[1] * 100:.1f}%"


def weekly_chart(weeks: list[dict[str, Any]]) -> Chart:
    """Accuracy against the reference per ISO week, with its 95 % band, and the table."""
    return Chart(
        id="my-weekly-accuracy",
        title="Accuracy per ISO week",
        kind="line",
        labels=[w["week"] for w in weeks],
        series=[
            {
                "name": "accuracy (%)",
                "data": [round(w["rate"] * 100, 1) for w in weeks],
                "band": [
                    [round(w["ci"][0] * 100, 1) for w in weeks],
                    [round(w["ci"][1] * 100, 1) for w in weeks],
                ],
            }
        ],
        columns=["week", "labels", "accuracy", "95% CI"],
        rows=[[w["week"], str(w["n"]), _pct(w["rate"]), _ci(w["ci"])] for w in weeks],
        note="Against the reference: the gold label, else the team's consensus.",
    )


@router.get("/projects/{project_id}/quality")
def quality_page(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    username: Annotated[str | None, Query(alias="user", max_length=150)] = None,
) -> Response:
    project = queries.visible_project(session, actor=actor, project_id=project_id)
    figures = quality.my_quality(session, actor=actor, project=project, username=username or None)
    others = quality.may_view_others(session, actor, project)
    is_self = figures["user"]["self"]
    return render(
        request,
        "quality.html",
        {
            "project": project,
            "q": figures,
            "chart": weekly_chart(figures["weeks"]),
            "members": quality.labelers(session, actor=actor, project=project) if others else [],
            "open_notes": is_self
            or queries.may(session, actor, Permission.FEEDBACK_SEND, project.id),
            "can_label": queries.may(session, actor, Permission.ANNOTATE, project.id),
            "pct": _pct,
            "ci": _ci,
        },
    )
