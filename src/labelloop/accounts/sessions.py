"""Server-side sign-in sessions: started at sign-in, checked on every request, ended by
logout, "sign out everywhere" or an administrator.

The browser's cookie carries a random secret (:data:`SECRET_BYTES` bytes); the table
holds only its SHA-256, like API tokens, so a copy of the database signs nobody in. A
session is valid while it is not revoked, not past ``expires_at`` (sign-in plus
``Settings.session_hours``) and has been used within ``Settings.session_idle_hours``.
``last_seen_at`` is written at most once a minute per session (:data:`TOUCH_EVERY`).
Starting and ending sessions are trail events (``session.start``, ``session.end``,
``session.revoke``); touching is not.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User, UserSession
from labelloop.accounts.tokens import hash_token, may_manage
from labelloop.errors import NotFound
from labelloop.store.base import utcnow

SECRET_BYTES = 32
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class SessionUse:
    """A valid session and its user, as a request needs them."""

    session_id: int
    user_id: int
    username: str
    display_name: str | None
    is_admin: bool
    touch_due: bool

    @property
    def actor(self) -> Actor:
        return Actor.for_user(self.user_id, self.username, is_admin=self.is_admin)


def start(
    session: Session,
    *,
    user: User,
    lifetime: timedelta,
    client: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> str:
    """Open a session for ``user`` (who has just proven their password) and return its
    secret, to be put in the cookie; it is not stored anywhere."""
    now = now or utcnow()
    secret = secrets.token_urlsafe(SECRET_BYTES)
    row = UserSession(
        user_id=user.id,
        token_hash=hash_token(secret),
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
        client=(client or "")[:100] or None,
        user_agent=(user_agent or "")[:300] or None,
    )
    session.add(row)
    session.flush()
    trail.service.append(
        session,
        actor=f"user:{user.username}",
        action="session.start",
        entity_type="user",
        entity_id=user.id,
        after={"session_id": row.id, "client": row.client, "expires_at": row.expires_at},
    )
    return secret


_LOOKUP = (
    select(
        UserSession.id,
        UserSession.last_seen_at,
        User.id.label("user_id"),
        User.username,
        User.display_name,
        User.is_admin,
    )
    .join(User, User.id == UserSession.user_id)
    .where(
        UserSession.token_hash == bindparam("digest"),
        UserSession.revoked_at.is_(None),
        UserSession.expires_at > bindparam("now"),
        UserSession.last_seen_at > bindparam("idle_since"),
        User.is_active.is_(True),
    )
)


def lookup(
    session: Session, secret: str, *, idle: timedelta, now: datetime | None = None
) -> SessionUse | None:
    """The session of a cookie's secret, or ``None`` when it is unknown, revoked,
    expired, idle for longer than ``idle``, or its user was deactivated."""
    now = now or utcnow()
    row = session.execute(
        _LOOKUP, {"digest": hash_token(secret), "now": now, "idle_since": now - idle}
    ).first()
    if row is None:
        return None
    return SessionUse(
        session_id=row.id,
        user_id=row.user_id,
        username=row.username,
        display_name=row.display_name,
        is_admin=row.is_admin,
        touch_due=now - row.last_seen_at >= TOUCH_EVERY,
    )


def touch(session: Session, session_id: int, now: datetime | None = None) -> None:
    """Record that the session was used (keeps it from going idle). On PostgreSQL a row
    that another request of the same session is touching right now is skipped (``SKIP
    LOCKED``): that request records the use, and this one does not wait for it."""
    row = UserSession.id == session_id
    if session.get_bind().dialect.name == "postgresql":
        free = select(UserSession.id).where(row).with_for_update(skip_locked=True)
        row = UserSession.id.in_(free.scalar_subquery())
    session.execute(update(UserSession).where(row).values(last_seen_at=now or utcnow()))


def end(session: Session, *, actor: Actor, secret: str) -> None:
    """Logout: revoke the session of this cookie's secret (nothing when it is unknown)."""
    row = session.scalar(select(UserSession).where(UserSession.token_hash == hash_token(secret)))
    if row is None or row.revoked_at is not None:
        return
    row.revoked_at = utcnow()
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="session.end",
        entity_type="user",
        entity_id=row.user_id,
        after={"session_id": row.id},
    )


def revoke(
    session: Session,
    *,
    actor: Actor,
    username: str,
    session_id: int | None = None,
) -> int:
    """End every live session of ``username`` ("sign out everywhere"), or only the one
    with ``session_id``; the user themselves or an administrator. Returns how many
    were ended."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    may_manage(session, actor, user)
    stmt = select(UserSession).where(
        UserSession.user_id == user.id, UserSession.revoked_at.is_(None)
    )
    if session_id is not None:
        stmt = stmt.where(UserSession.id == session_id)
    rows = session.scalars(stmt).all()
    if session_id is not None and not rows:
        raise NotFound(f"{username} has no live session {session_id}")
    now = utcnow()
    for row in rows:
        row.revoked_at = now
    session.flush()
    if rows:
        trail.service.append(
            session,
            actor=actor.name,
            action="session.revoke",
            entity_type="user",
            entity_id=user.id,
            after={"session_ids": [r.id for r in rows]},
        )
    return len(rows)


def live(
    session: Session, *, actor: Actor, username: str, idle: timedelta, now: datetime | None = None
) -> Sequence[UserSession]:
    """The user's sessions that are still valid, newest first (the user or an admin)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    may_manage(session, actor, user)
    now = now or utcnow()
    return session.scalars(
        select(UserSession)
        .where(
            UserSession.user_id == user.id,
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > now,
            UserSession.last_seen_at > now - idle,
        )
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    ).all()
