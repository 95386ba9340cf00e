"""The signed-in user's inbox: new cases, escalations, rulings that differ from their
label and digests of notable rulings, newest first; unread ones marked. Everyone reads
only their own (see :mod:`labelloop.escalation.service`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from labelloop.escalation import service as escalation
from labelloop.web.deps import CurrentActor, CurrentUser, PathId, SessionDep, TransactionRoute
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)

#: Notifications shown at most.
LIMIT = 200
FLASH = "inbox_flash"


def safe_link(link: str | None) -> str | None:
    """A notification's link when it points into this site (a path), else ``None``."""
    if not link or not link.startswith("/") or link.startswith("//") or "\\" in link:
        return None
    return link


@router.get("/inbox")
def inbox_page(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    unread: Annotated[bool, Query()] = False,
) -> Response:
    found = escalation.inbox(session, actor=actor, unread_only=unread, limit=LIMIT)
    flash = request.session.pop(FLASH, None)
    return render(
        request,
        "inbox.html",
        {
            "notifications": [(n, safe_link(n.link)) for n in found],
            "unread_only": unread,
            "limit": LIMIT,
            "flash": flash if isinstance(flash, str) else None,
        },
    )


@router.post("/inbox/read")
def mark_all_read(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    changed = escalation.mark_read(session, actor=actor)
    request.session[FLASH] = (
        f"Marked {changed} notification{'' if changed == 1 else 's'} read."
        if changed
        else "Nothing was unread."
    )
    return RedirectResponse("/inbox", status_code=303)


@router.post("/inbox/{notification_id}/read")
def mark_one_read(
    request: Request,
    notification_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    escalation.mark_read(session, actor=actor, ids=[notification_id])
    return RedirectResponse("/inbox", status_code=303)
