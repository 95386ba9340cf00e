"""The anonymous channel's pages: the form members post notes with
(``/projects/{id}/anonymous``) and the leads' summary (``.../anonymous/summary``).

These requests leave nothing of the caller behind (see
:mod:`labelloop.feedback.anonymous` for what the service stores):

* Their routes are :class:`UntracedRoute`\\ s. The connection's address is removed from
  the request before anything runs, so uvicorn's access line for them has no client
  (``- "POST /projects/3/anonymous HTTP/1.1" 303``) and nothing in the app can record
  it. The caller is resolved from the session cookie like on every page, but read only:
  the session's ``last_seen_at`` is not written (every other page writes it at most
  once a minute; here it would date the post). CSRF is checked as everywhere.
* Nothing is written to the browser's session either (the confirmation is a query
  parameter of the redirect).
* A server error on these routes is re-raised as :class:`AnonymousRequestFailed`,
  without its cause: the server logs an unhandled error with its traceback, and a
  database error's message lists its statement's parameters (the member's user id in
  the membership check, the session's hash in the caller's look-up). Answered errors
  (404, 403, 422, 429, a concurrent change's 409) are not logged and pass unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from labelloop.accounts import sessions
from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Permission
from labelloop.errors import LabelLoopError, RateLimited, ValidationFailed
from labelloop.feedback import anonymous
from labelloop.projects.models import Project
from labelloop.settings import Settings
from labelloop.store import session_scope
from labelloop.store.conflicts import is_concurrent_conflict
from labelloop.web import queries
from labelloop.web.deps import (
    _RESOLVED,
    CurrentActor,
    CurrentUser,
    PathId,
    SessionDep,
    SignedIn,
    TransactionRoute,
)
from labelloop.web.errors import LoginRequired, WebError
from labelloop.web.templating import render

#: What each category is for, as the form explains it.
CATEGORY_HELP: dict[str, str] = {
    "guidelines": "a rule is unclear, wrong or missing",
    "workload": "too much, too little, or badly spread",
    "tooling": "the workbench or other tools get in the way",
    "pressure": "speed, targets or how people are treated",
    "other": "anything else",
}
#: The form refuses longer fields outright; the service explains the real limit.
FORM_TEXT_LIMIT = 4 * anonymous.MAX_TEXT

Category = Annotated[str, Form(max_length=50)]
NoteText = Annotated[str, Form(max_length=FORM_TEXT_LIMIT)]


def _caller_untouched(request: Request) -> None:
    """Resolve the signed-in caller from the session cookie without writing anything
    (no ``last_seen_at``), and keep it where :data:`CurrentActor` and
    :data:`CurrentUser` find it. Anonymous or expired callers get LoginRequired (the
    login page), before any body is read."""
    secret = request.session.get("sid")
    if not isinstance(secret, str) or not secret:
        raise LoginRequired("sign in first")
    settings: Settings = request.app.state.settings
    # SQLite: the read-only engine, as every look-up of the caller
    factory = request.app.state.read_sessions or request.app.state.sessions
    with session_scope(factory) as db:
        use = sessions.lookup(db, secret, idle=timedelta(hours=settings.session_idle_hours))
    if use is None:
        request.session.clear()
        raise LoginRequired("sign in first")
    request.state.auth = "cookie"
    request.state.user = SignedIn(use.user_id, use.username, use.display_name, use.is_admin)
    setattr(request.state, _RESOLVED, use.actor)


class AnonymousRequestFailed(RuntimeError):
    """A server error on the anonymous channel, told without its cause (see the module
    docstring)."""


#: Errors that get an answer (no log line with a traceback): they pass unchanged.
_ANSWERED = (LabelLoopError, WebError, StarletteHTTPException, RequestValidationError)


def _answered(exc: Exception) -> bool:
    return isinstance(exc, _ANSWERED) or (
        isinstance(exc, DBAPIError) and is_concurrent_conflict(exc)
    )


class UntracedRoute(TransactionRoute):
    """A page route that forgets the client's address and resolves its caller without
    touching the session (see the module docstring); otherwise a
    :class:`~labelloop.web.deps.TransactionRoute` (the route's thread commits)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = APIRoute.get_route_handler(self)

        async def untraced(request: Request) -> Response:
            # the same scope uvicorn writes its access line from
            request.scope["client"] = None
            try:
                await run_in_threadpool(_caller_untouched, request)
                return await handler(request)
            except Exception as exc:
                if _answered(exc):
                    raise
                name = type(exc).__name__
                raise AnonymousRequestFailed(f"{name} on the anonymous channel") from None

        return untraced


router = APIRouter(route_class=UntracedRoute)


def _form_page(
    request: Request,
    session: Session,
    actor: Actor,
    project: Project,
    *,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    sent: bool = False,
    status_code: int = 200,
) -> Response:
    can_post = anonymous.may_post(session, actor=actor, project_id=project.id)
    return render(
        request,
        "anonymous.html",
        {
            "project": project,
            "v": values,
            "errors": errors or {},
            "sent": sent,
            "can_post": can_post,
            "can_read": queries.may(session, actor, Permission.PROJECT_MANAGE, project.id),
            "remaining": anonymous.remaining_today(session, actor=actor) if can_post else 0,
            "categories": [(c, CATEGORY_HELP.get(c, "")) for c in anonymous.CATEGORIES],
            "limit": anonymous.DAILY_LIMIT,
            "threshold": anonymous.THRESHOLD,
            "max_text": anonymous.MAX_TEXT,
        },
        status_code=status_code,
    )


@router.get("/projects/{project_id}/anonymous")
def anonymous_form(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    sent: Annotated[bool, Query()] = False,
) -> Response:
    project = queries.visible_project(session, actor=actor, project_id=project_id)
    return _form_page(
        request, session, actor, project, values={"category": "", "text": ""}, sent=sent
    )


@router.post("/projects/{project_id}/anonymous")
def anonymous_post(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    category: Category = "",
    text: NoteText = "",
) -> Response:
    """Post a note; a refused one gets the form back (422 with a message by its field,
    429 past the daily limit) with what was typed, and nothing is written."""
    project = queries.visible_project(session, actor=actor, project_id=project_id)
    errors: dict[str, str] = {}
    try:
        anonymous.post_note(
            session, actor=actor, project_id=project.id, category=category, text=text
        )
    except ValidationFailed as exc:
        for v in exc.violations:
            errors.setdefault(v.field, v.message)
        status = 422
    except RateLimited as exc:
        errors, status = {"form": str(exc)}, 429
    else:
        return RedirectResponse(f"/projects/{project.id}/anonymous?sent=1", status_code=303)
    session.rollback()
    project = queries.visible_project(session, actor=actor, project_id=project_id)
    return _form_page(
        request,
        session,
        actor,
        project,
        values={"category": category, "text": text},
        errors=errors,
        status_code=status,
    )


@router.get("/projects/{project_id}/anonymous/summary")
def anonymous_summary(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    """What the team said, in groups of at least the threshold (leads, admins)."""
    project = queries.visible_project(session, actor=actor, project_id=project_id)
    found = anonymous.summary(session, actor=actor, project_id=project.id)
    return render(
        request,
        "anonymous_summary.html",
        {
            "project": project,
            "summary": found,
            "can_post": anonymous.may_post(session, actor=actor, project_id=project.id),
            "threshold": anonymous.THRESHOLD,
        },
    )
