"""Request dependencies: one database session per request, and who is asking.

``SessionDep`` opens a session for the request and commits it when the route returns
(before the response is sent, so a failed commit is a 500, never a false success),
or rolls it back when anything raises. Routes and services never commit.

``CurrentActor`` resolves the caller: under ``/api/`` an ``Authorization: Bearer``
token (see :mod:`labelloop.accounts.tokens`) or the session cookie; on pages the
session cookie only. Anonymous callers get :class:`~labelloop.web.errors.LoginRequired`
(401 for the API, a redirect to the login page for pages). Routes resolve the actor
and pass it on; what the actor may do is decided in the services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from labelloop.accounts import tokens
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.store import session_scope
from labelloop.web.errors import LoginRequired
from labelloop.web.security import password_fingerprint


@dataclass(frozen=True)
class SignedIn:
    """The signed-in user of a page request (a plain copy: templates may render it after
    the request's session has closed, e.g. on error pages)."""

    id: int
    username: str
    display_name: str | None
    is_admin: bool


def get_session(request: Request) -> Iterator[Session]:
    request.state.after_commit = []
    with session_scope(request.app.state.sessions) as session:
        yield session
    callbacks: list[Callable[[], None]] = request.state.after_commit
    for callback in callbacks:
        callback()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def optional_actor(request: Request, session: SessionDep) -> Actor | None:
    """The caller, or ``None`` when anonymous."""
    if request.url.path.startswith("/api/") and "authorization" in request.headers:
        scheme, _, credential = request.headers["authorization"].partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise LoginRequired("use 'Authorization: Bearer <token>'")
        actor = tokens.authenticate(session, credential.strip())
        if actor is None:
            raise LoginRequired("the API token is unknown, expired or revoked")
        request.state.auth = "token"
        return actor
    uid = request.session.get("uid")
    if not isinstance(uid, int):
        return None
    user = session.get(User, uid)
    if (
        user is None
        or not user.is_active
        or request.session.get("pw") != password_fingerprint(user.password_hash)
    ):
        request.session.clear()
        return None
    request.state.auth = "cookie"
    request.state.user = SignedIn(user.id, user.username, user.display_name, user.is_admin)
    return Actor.for_user(user.id, user.username, is_admin=user.is_admin)


OptionalActor = Annotated[Actor | None, Depends(optional_actor, scope="function")]


async def current_actor(actor: OptionalActor) -> Actor:
    # async: no I/O here, and a sync dependency would cost a worker-thread round trip
    if actor is None:
        raise LoginRequired("sign in first (or send an API token)")
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor, scope="function")]


def current_user(request: Request, actor: CurrentActor) -> SignedIn:
    """The signed-in user of a page request (pages take no API tokens)."""
    user: SignedIn | None = getattr(request.state, "user", None)
    if user is None:
        raise LoginRequired("sign in first")
    return user


CurrentUser = Annotated[SignedIn, Depends(current_user, scope="function")]
