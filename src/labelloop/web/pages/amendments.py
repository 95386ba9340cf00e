"""Proposed guideline amendments on the lead's draft page: what each proposes (a rule's
clarified text, or an item as a boundary exemplar) and the ruling it came from, with
Accept (into the draft, shipped with the next published version) and Reject."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Permission
from labelloop.audits.population import label_key
from labelloop.errors import NotFound
from labelloop.guidelines import amendments
from labelloop.projects import service as projects
from labelloop.projects.models import Project
from labelloop.projects.validation import payload_text
from labelloop.web import queries
from labelloop.web.deps import CurrentActor, CurrentUser, PathId, SessionDep, TransactionRoute

router = APIRouter(route_class=TransactionRoute)


def amendment_rows(session: Session, actor: Actor, project: Project) -> list[dict[str, Any]]:
    """The proposed amendments (oldest first) as the draft page shows them."""
    rows = []
    for a in amendments.list_amendments(session, actor=actor, project=project):
        item = None
        if a.item_id is not None:
            try:
                item = projects.get_item(session, project, a.item_id)
            except NotFound:
                item = None
        text = payload_text(item.payload) if item is not None else None
        rows.append(
            {
                "amendment": a,
                "item": None if item is None else item.external_id,
                "item_text": (text or "")[:300],
                "label": None if a.label is None else label_key(a.label),
                "by": a.proposed_by.removeprefix("user:"),
            }
        )
    return rows


def _editing(session: Session, actor: Actor, project_id: int) -> Project:
    return queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.GUIDELINE_EDIT
    )


@router.post("/projects/{project_id}/guidelines/amendments/{amendment_id}/accept")
def accept_amendment(
    request: Request,
    project_id: PathId,
    amendment_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = _editing(session, actor, project_id)
    amendments.accept(session, actor=actor, project=project, amendment_id=amendment_id)
    return RedirectResponse(
        f"/projects/{project.id}/guidelines/draft?saved=1#amendments", status_code=303
    )


@router.post("/projects/{project_id}/guidelines/amendments/{amendment_id}/reject")
def reject_amendment(
    request: Request,
    project_id: PathId,
    amendment_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = _editing(session, actor, project_id)
    amendments.reject(session, actor=actor, project=project, amendment_id=amendment_id)
    return RedirectResponse(
        f"/projects/{project.id}/guidelines/draft?saved=1#amendments", status_code=303
    )
