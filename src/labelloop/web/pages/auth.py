"""Login and logout."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from labelloop.accounts.models import User
from labelloop.accounts.service import check_password
from labelloop.web.deps import CurrentActor, OptionalActor, SessionDep, TransactionRoute
from labelloop.web.errors import TooManyAttempts
from labelloop.web.security import LoginThrottle, password_fingerprint
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)


def _safe_next(target: str | None) -> str:
    """Only same-site paths (no scheme, no host, no ``//``) are followed after login."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
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
    next: Annotated[str, Form()] = "/",
) -> Response:
    throttle: LoginThrottle = request.app.state.throttle
    client = request.client.host if request.client else "unknown"
    wait = throttle.retry_after(username, client)
    if wait is not None:
        raise TooManyAttempts(
            f"too many failed sign-ins for {username!r}; try again in {wait // 60 + 1} minutes",
            headers={"Retry-After": str(wait)},
        )
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.is_active or not check_password(user, password):
        throttle.failed(username, client)
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
    request.session.clear()  # a new session (and CSRF token) at every sign-in
    request.session["uid"] = user.id
    request.session["pw"] = password_fingerprint(user.password_hash)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, actor: CurrentActor) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/healthz")
def healthz(session: SessionDep) -> dict[str, str]:
    """Liveness: the database answers."""
    session.execute(select(1))
    return {"status": "ok"}
