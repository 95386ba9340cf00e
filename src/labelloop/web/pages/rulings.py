"""Rulings for the whole team: the list (``?notable=1``: the digest of notable rulings)
and one ruling with its item's text. Any member of the project may read them: the
notification an annotator gets when a ruling differs from their label links here.
Adjudicators and readers of data see every ruling; other members see those on items
they labelled and the notable ones (see :func:`labelloop.adjudication.rulings.sees_all_rulings`),
and never whether an item is gold (a gold item is a hidden check)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Permission
from labelloop.adjudication import rulings
from labelloop.adjudication.models import Ruling
from labelloop.audits.population import label_key
from labelloop.guidelines import service as guidelines
from labelloop.projects import service as projects
from labelloop.projects.models import Project
from labelloop.projects.validation import payload_text
from labelloop.web import queries
from labelloop.web.deps import CurrentActor, CurrentUser, PathId, SessionDep, TransactionRoute
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)

#: Rulings per list page.
LIMIT = 200


def _reading(session: Session, actor: Actor, project_id: int) -> Project:
    return queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.PROJECT_READ
    )


def _rule_titles(session: Session, project: Project) -> dict[str, str]:
    """Rule id -> title in the current guideline (rulings name rules by id)."""
    version = guidelines.current(session, project.id)
    return {} if version is None else {r.key: r.title for r in version.rules}


def _row(ruling: Ruling, external_id: str) -> dict[str, Any]:
    return {"ruling": ruling, "item": external_id, "label": label_key(ruling.value)}


@router.get("/projects/{project_id}/rulings")
def ruling_list(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    notable: Annotated[bool, Query()] = False,
) -> Response:
    project = _reading(session, actor, project_id)
    found = rulings.list_rulings(
        session, actor=actor, project=project, notable=notable, limit=LIMIT
    )
    return render(
        request,
        "rulings.html",
        {
            "project": project,
            "rows": [_row(r, ext) for r, ext in found],
            "notable": notable,
            "limit": LIMIT,
            "titles": _rule_titles(session, project),
            "can_adjudicate": queries.may(session, actor, Permission.ADJUDICATE, project.id),
            "sees_all": rulings.sees_all_rulings(session, actor, project.id),
        },
    )


@router.get("/projects/{project_id}/rulings/{ruling_id}")
def ruling_page(
    request: Request,
    project_id: PathId,
    ruling_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = _reading(session, actor, project_id)
    ruling = rulings.get_ruling(session, actor=actor, project=project, ruling_id=ruling_id)
    item = projects.get_item(session, project, ruling.item_id)
    return render(
        request,
        "ruling.html",
        {
            "project": project,
            "ruling": ruling,
            "label": label_key(ruling.value),
            "item": item,
            "text": payload_text(item.payload),
            "titles": _rule_titles(session, project),
            "can_adjudicate": queries.may(session, actor, Permission.ADJUDICATE, project.id),
            "sees_all": rulings.sees_all_rulings(session, actor, project.id),
        },
    )
