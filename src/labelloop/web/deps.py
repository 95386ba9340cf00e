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
session cookie only, whose secret must name a live server-side session
(:mod:`labelloop.accounts.sessions`). On SQLite it reads through a separate read-only
session, so that resolving the caller never takes the write lock. Anonymous callers get
:class:`~labelloop.web.errors.LoginRequired` (401 for the API, a redirect to the login
page for pages). Routes resolve the actor and pass it on; what the actor may do is
decided in the services.

**Authentication comes before the body.** FastAPI reads and parses a request's body
before it solves the route's dependencies, so a :class:`TransactionRoute` that takes
a body (every POST/PUT/PATCH but the sign-in form) resolves the caller first, in
:func:`authenticate_first`: an anonymous or revoked caller is refused before a byte of
the body is read, and a route marked with :func:`before_body` (uploads) also checks
its permission then. The resolved caller is kept for the route's own dependencies.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from labelloop.accounts import sessions, tokens
from labelloop.accounts.actor import Actor
from labelloop.identifiers import MAX_ID
from labelloop.settings import Settings
from labelloop.store import session_scope
from labelloop.web.errors import LoginRequired

#: Requests of these methods carry bodies; their routes authenticate before reading.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Routes that anonymous callers may post to.
ANONYMOUS_POSTS = frozenset({"/login"})
#: Key of the caller resolved before the body in ``request.state``.
_RESOLVED = "caller"


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
    # for the page's navigation (templating.render), read on the route's own thread;
    # cleared before any error page renders
    request.state.db_session = session
    try:
        yield session
        if session.in_transaction():
            await run_in_threadpool(session.commit)
    except BaseException:
        if session.in_transaction():
            await run_in_threadpool(session.rollback)
        raise
    finally:
        request.state.db_session = None
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


#: A record id in a page's path: 1 to :data:`~labelloop.identifiers.MAX_ID` (422 beyond,
#: never a database overflow).
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]

#: A check that must pass before a route's body is read: (session, actor, path params).
BeforeBody = Callable[[Session, Actor, dict[str, Any]], None]


def before_body(check: BeforeBody) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a route: ``check`` runs (with the authenticated caller) before its body is
    read, e.g. that the caller may import before a 200 MB upload is accepted."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint.__labelloop_before_body__ = check  # type: ignore[attr-defined]
        return endpoint

    return mark


class TransactionRoute(APIRoute):
    """A route whose sync endpoint commits the request's session (``SessionDep``) on its
    own worker thread right after returning, and that authenticates before reading a
    body; see the module docstring. Async endpoints are left alone
    (:func:`get_session` commits for them)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        self.before_body: BeforeBody | None = getattr(endpoint, "__labelloop_before_body__", None)
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _committing(endpoint)
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.path in ANONYMOUS_POSTS or not (self.methods or set()) & BODY_METHODS:
            return handler
        check = self.before_body

        async def authenticated_first(request: Request) -> Response:
            if request.method in BODY_METHODS:
                await run_in_threadpool(authenticate_first, request, check)
            return await handler(request)

        return authenticated_first


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


def _session_use(request: Request, session: Session, secret: str) -> sessions.SessionUse | None:
    """The live server-side session of the cookie's secret (read as
    :func:`_token_actor` reads; ``last_seen_at`` is written at most once a minute)."""
    settings: Settings = request.app.state.settings
    idle = timedelta(hours=settings.session_idle_hours)
    readers = request.app.state.read_sessions
    if readers is None:
        use = sessions.lookup(session, secret, idle=idle)
        if use is not None and use.touch_due:
            sessions.touch(session, use.session_id)
        return use
    with session_scope(readers) as reader:
        use = sessions.lookup(reader, secret, idle=idle)
    if use is not None and use.touch_due:
        with session_scope(request.app.state.sessions) as writer:
            sessions.touch(writer, use.session_id)
    return use


def _resolve(request: Request, session: Session) -> Actor | None:
    """The caller of the request, or ``None`` when anonymous (LoginRequired for a bad
    bearer token)."""
    if request.url.path.startswith("/api/") and "authorization" in request.headers:
        scheme, _, credential = request.headers["authorization"].partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise LoginRequired("use 'Authorization: Bearer <token>'")
        actor = _token_actor(request, session, credential.strip())
        if actor is None:
            raise LoginRequired("the API token is unknown, expired or revoked")
        request.state.auth = "token"
        return actor
    secret = request.session.get("sid")
    if not isinstance(secret, str) or not secret:
        return None
    use = _session_use(request, session, secret)
    if use is None:
        request.session.clear()
        return None
    request.state.auth = "cookie"
    request.state.user = SignedIn(use.user_id, use.username, use.display_name, use.is_admin)
    request.state.session_id = use.session_id
    return use.actor


def authenticate_first(request: Request, check: BeforeBody | None) -> None:
    """Resolve the caller before the body is read (see the module docstring): refuse
    anonymous callers, run the route's :func:`before_body` check, and keep the caller
    for :func:`optional_actor`. Uses a short session of its own."""
    # SQLite: the read-only engine (no write lock for a look-up); a session touch
    # still goes through the writer, in a short transaction of its own
    factory = request.app.state.read_sessions or request.app.state.sessions
    with session_scope(factory) as session:
        actor = _resolve(request, session)
        if actor is None:
            raise LoginRequired("sign in first (or send an API token)")
        if check is not None:
            check(session, actor, dict(request.path_params))
    setattr(request.state, _RESOLVED, actor)


def optional_actor(request: Request, session: SessionDep) -> Actor | None:
    """The caller, or ``None`` when anonymous."""
    resolved: Actor | None = getattr(request.state, _RESOLVED, None)
    if resolved is not None:
        return resolved
    return _resolve(request, session)


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


@contextmanager
def long_read(request: Request, session: Session) -> Iterator[Session]:
    """A session for a long read that comes before a short write on ``session`` (the
    request's): on SQLite a read-only session of its own (a deferred BEGIN, no write
    lock), so the request's session takes the lock only when it writes; elsewhere the
    request's session itself, where reading blocks no writer and needs no second
    connection. Touch ``session`` only after the reading."""
    readers = request.app.state.read_sessions
    if readers is None:
        yield session
        return
    with session_scope(readers) as reader:
        yield reader
