"""Sign-in, sign-out, and the signed-in user's own page (their sessions)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop.accounts import service as accounts
from labelloop.accounts import sessions
from labelloop.accounts.models import User
from labelloop.settings import Settings
from labelloop.store import session_scope
from labelloop.web import queries
from labelloop.web.deps import (
    CurrentActor,
    CurrentUser,
    OptionalActor,
    SessionDep,
    TransactionRoute,
)
from labelloop.web.errors import TooManyAttempts
from labelloop.web.security import LoginThrottle, PasswordGate, client_address
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)


def _safe_next(target: str | None) -> str:
    """Only same-site paths (no scheme, no host, no ``//`` or ``/\\``) are followed
    after sign-in."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
    ):
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, actor: OptionalActor, next: str | None = None) -> Response:
    if actor is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Check the throttle, then the password (one argon2 check whether or not the
    account exists, at most ``login_concurrency`` at once), then open a server-side
    session whose secret goes into the signed cookie."""
    throttle: LoginThrottle = request.app.state.throttle
    gate: PasswordGate = request.app.state.password_gate
    settings: Settings = request.app.state.settings
    client = client_address(request)
    wait = throttle.attempt(username, client)  # counted now, taken back on success
    if wait is not None:
        raise TooManyAttempts(
            f"too many failed sign-ins; try again in {wait // 60 + 1} minutes",
            headers={"Retry-After": str(wait)},
        )
    with gate.slot():
        user = _check(request, session, username, password)
    if user is None:
        return render(
            request,
            "login.html",
            {
                "next": _safe_next(next),
                "error": "Unknown user or wrong password.",
                "username": username,
            },
        )
    throttle.succeeded(username, client)
    secret = sessions.start(
        session,
        user=user,
        lifetime=timedelta(hours=settings.session_hours),
        client=client,
        user_agent=request.headers.get("user-agent"),
    )
    request.session.clear()  # a new session (and CSRF token) at every sign-in
    request.session["sid"] = secret
    return RedirectResponse(_safe_next(next), status_code=303)


def _check(request: Request, session: Session, username: str, password: str) -> User | None:
    """The password check. On SQLite it reads through the read-only engine: the
    request's own session would take the database's write lock at its first statement
    and hold it through the (slow, by design) hash check."""
    readers = request.app.state.read_sessions
    if readers is None:
        return accounts.authenticate(session, username, password)
    with session_scope(readers) as reader:
        return accounts.authenticate(reader, username, password)


@router.post("/logout")
def logout(request: Request, session: SessionDep, actor: CurrentActor) -> Response:
    """End this session on the server too: a copy of the cookie no longer works."""
    secret = request.session.get("sid")
    if isinstance(secret, str) and secret:
        sessions.end(session, actor=actor, secret=secret)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def _idle(request: Request) -> timedelta:
    settings: Settings = request.app.state.settings
    return timedelta(hours=settings.session_idle_hours)


@router.get("/account")
def account_page(
    request: Request, session: SessionDep, actor: CurrentActor, user: CurrentUser
) -> Response:
    """The signed-in user's page: their roles per project and their live sessions,
    with "sign out" for each and "sign out everywhere"."""
    settings: Settings = request.app.state.settings
    live = sessions.live(session, actor=actor, username=user.username, idle=_idle(request))
    projects = [
        (p, queries.my_roles(session, actor=actor, project_id=p.id))
        for p in queries.visible_projects(session, actor=actor)
    ]
    return render(
        request,
        "account.html",
        {
            "sessions": live,
            "current": getattr(request.state, "session_id", None),
            "projects": projects,
            "ended": _count(request.query_params.get("ended")),
            "session_hours": f"{settings.session_hours:g}",
            "idle_hours": f"{settings.session_idle_hours:g}",
        },
    )


@router.post("/account/sessions/revoke")
def revoke_sessions(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    session_id: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Sign out one session (``session_id``) or every session, this one included."""
    ended = sessions.revoke(session, actor=actor, username=user.username, session_id=session_id)
    if session_id is None or session_id == getattr(request.state, "session_id", None):
        request.session.clear()
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(f"/account?ended={ended}", status_code=303)


def _count(text: str | None) -> int | None:
    """A small count from the query string (anything else is ignored)."""
    return int(text) if text is not None and text.isdigit() and len(text) < 6 else None


@router.get("/healthz")
def healthz(session: SessionDep) -> dict[str, str]:
    """Liveness: the database answers."""
    session.execute(select(1))
    return {"status": "ok"}
