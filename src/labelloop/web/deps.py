r"""Request dependencies: one database session per request, and who is asking.

``SessionDep`` opens a session for the request. Routes are :class:`TransactionRoute`\ s:
a sync route's session is committed on the route's own worker thread as soon as it
returns (before the response is sent, so a failed commit is a 500, never a false
success), and rolled back when anything raises. Routes and services never commit.
Committing on the route's thread keeps a write transaction (and, on SQLite, the
database's write lock; on PostgreSQL, the trail head's row lock) to one thread's
uninterrupted work instead of spanning a round trip through the event loop.

``CurrentActor`` resolves the caller: under ``/api/`` an ``Authorization: Bearer``
token (see :mod:`labelloop.accounts.tokens`) or the session cookie; on pages the
session cookie only. On SQLite it reads through a separate read-only session, so that
resolving the caller never takes the write lock. Anonymous callers get
:class:`~labelloop.web.errors.LoginRequired` (401 for the API, a redirect to the login
page for pages). Routes resolve the actor and pass it on; what the actor may do is
decided in the services.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
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


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session. Opening it does no I/O, so this runs on the event loop;
    a transaction still open when the route is done (an async route, or an error) is
    committed or rolled back on a worker thread."""
    request.state.after_commit = []
    session = request.app.state.sessions()
    try:
        yield session
        if session.in_transaction():
            await run_in_threadpool(session.commit)
    except BaseException:
        if session.in_transaction():
            await run_in_threadpool(session.rollback)
        raise
    finally:
        session.close()  # nothing is open any more: no I/O
    callbacks: list[Callable[[], None]] = request.state.after_commit
    for callback in callbacks:
        callback()


def _committing(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        result = endpoint(*args, **kwargs)
        for value in kwargs.values():
            if isinstance(value, Session) and value.in_transaction():
                value.commit()
        return result

    return run


class TransactionRoute(APIRoute):
    """A route whose sync endpoint commits the request's session (``SessionDep``) on its
    own worker thread right after returning; see the module docstring. Async endpoints
    are left alone (:func:`get_session` commits for them)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _committing(endpoint)
        super().__init__(path, endpoint, **kwargs)


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def _token_actor(request: Request, session: Session, credential: str) -> Actor | None:
    """The actor of a bearer token. On SQLite the lookup reads through a separate
    read-only session: the request's session takes the database's write lock at its
    first statement, and the lookup must not hold it while the request waits for the
    route's thread; the once-a-minute ``last_used_at`` write is then a short
    transaction of its own (the request's session holds no connection yet). Elsewhere
    both run in the request's own transaction: no lock is taken by the read, it saves a
    connection checkout and a round trip, and it never needs a second connection while
    holding one (which could exhaust the pool)."""
    readers = request.app.state.read_sessions
    if readers is None:
        return tokens.authenticate(session, credential)
    with session_scope(readers) as reader:
        use = tokens.lookup(reader, credential)
    if use is not None and use.touch_due:
        with session_scope(request.app.state.sessions) as writer:
            tokens.touch(writer, use.token_id)
    return None if use is None else use.actor


def _user(request: Request, session: Session, uid: int) -> User | None:
    """A signed-in user's account (read as :func:`_token_actor` reads)."""
    readers = request.app.state.read_sessions
    if readers is None:
        return session.get(User, uid)
    with session_scope(readers) as reader:
        return reader.get(User, uid)


def optional_actor(request: Request, session: SessionDep) -> Actor | None:
    """The caller, or ``None`` when anonymous."""
    if request.url.path.startswith("/api/") and "authorization" in request.headers:
        scheme, _, credential = request.headers["authorization"].partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise LoginRequired("use 'Authorization: Bearer <token>'")
        actor = _token_actor(request, session, credential.strip())
        if actor is None:
            raise LoginRequired("the API token is unknown, expired or revoked")
        request.state.auth = "token"
        return actor
    uid = request.session.get("uid")
    if not isinstance(uid, int):
        return None
    user = _user(request, session, uid)
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
