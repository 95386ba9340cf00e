"""API tokens: bearer credentials scoped to one project and one role, stored hashed.

A token is ``ll_`` followed by 40 URL-safe random characters. Only its SHA-256 is
stored (a token has 240 bits of entropy, so a fast hash is enough: there is nothing to
brute-force); the plaintext is returned once by :func:`create_token`. The actor a token
authenticates (:func:`authenticate`) is never an administrator and may act only in the
token's project with the token's role, and only while its user still holds that role
(see :func:`labelloop.accounts.policy.require`). Services take ``session`` and never
commit; every write appends a trail event.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import ApiToken, Membership, User
from labelloop.accounts.policy import require_admin
from labelloop.accounts.roles import Role
from labelloop.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from labelloop.store.base import utcnow

TOKEN_PREFIX = "ll_"
PREFIX_SHOWN = 10  # characters of the plaintext kept for listings ("ll_" + 7)


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    """A created token: the stored row and the plaintext (shown once, never stored)."""

    token: ApiToken
    plaintext: str


def may_manage(session: Session, actor: Actor, user: User) -> None:
    """Administrators manage every user's credentials (tokens, sessions); a signed-in
    user manages their own (not through a token)."""
    if actor.system or actor.is_admin:
        return
    if actor.scope_role is None and actor.user_id == user.id:
        return
    require_admin(actor)


def create_token(
    session: Session,
    *,
    actor: Actor,
    username: str,
    project_id: int,
    role: Role,
    name: str = "",
    expires_at: datetime | None = None,
) -> NewToken:
    """A new token for ``username`` in ``project_id`` with ``role``, which the user must
    hold there."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    may_manage(session, actor, user)
    if not user.is_active:
        raise Conflict(f"user {username!r} is deactivated")
    holds = session.scalar(
        select(Membership.id).where(
            Membership.user_id == user.id,
            Membership.project_id == project_id,
            Membership.role == Role(role).value,
        )
    )
    if holds is None:
        raise ValidationFailed(
            f"{username} has no {Role(role).value} role in project {project_id}; "
            "a token can only carry a role its user holds"
        )
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed("the expiry date is in the past")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(30)
    token = ApiToken(
        user_id=user.id,
        project_id=project_id,
        role=Role(role).value,
        name=name.strip(),
        prefix=plaintext[:PREFIX_SHOWN],
        token_hash=hash_token(plaintext),
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="api_token.create",
        entity_type="api_token",
        entity_id=token.id,
        project_id=project_id,
        after={
            "username": username,
            "role": token.role,
            "name": token.name,
            "prefix": token.prefix,
            "expires_at": expires_at,
        },
    )
    return NewToken(token, plaintext)


def list_tokens(
    session: Session, *, actor: Actor, username: str | None = None
) -> Sequence[tuple[ApiToken, str]]:
    """Tokens (with their user's name), newest first; a non-admin sees only their own."""
    stmt = (
        select(ApiToken, User.username)
        .join(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.id.desc())
    )
    if username is not None:
        stmt = stmt.where(User.username == username)
    if not (actor.system or actor.is_admin):
        if actor.user_id is None or actor.scope_role is not None:
            raise PermissionDenied(f"{actor.name} may not list API tokens")
        stmt = stmt.where(ApiToken.user_id == actor.user_id)
    return [(t, name) for t, name in session.execute(stmt).tuples()]


def revoke_token(session: Session, *, actor: Actor, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no API token {token_id}")
    user = session.get(User, token.user_id)
    assert user is not None
    may_manage(session, actor, user)
    if token.revoked_at is not None:
        raise Conflict(f"API token {token_id} is already revoked")
    token.revoked_at = utcnow()
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="api_token.revoke",
        entity_type="api_token",
        entity_id=token.id,
        project_id=token.project_id,
        before={"prefix": token.prefix, "role": token.role, "username": user.username},
    )
    return token


#: Built once (every API request runs it); columns only, no ORM objects to build.
_BY_HASH = (
    select(
        ApiToken.id,
        ApiToken.project_id,
        ApiToken.role,
        ApiToken.revoked_at,
        ApiToken.expires_at,
        ApiToken.last_used_at,
        User.id.label("user_id"),
        User.username,
        User.is_active,
    )
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


#: How stale ``last_used_at`` may get before a use records it again.
TOUCH_EVERY_SECONDS = 60


@dataclass(frozen=True)
class TokenUse:
    """A valid token's actor, and whether its ``last_used_at`` is due to be recorded."""

    actor: Actor
    token_id: int
    touch_due: bool


def lookup(session: Session, plaintext: str) -> TokenUse | None:
    """Read-only half of :func:`authenticate`: the actor a bearer token stands for, or
    ``None`` (unknown, revoked, expired, or its user deactivated). Writes nothing, so it
    can run on a read-only session; record the use with :func:`touch`."""
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 200:
        return None
    token = session.execute(_BY_HASH, {"token_hash": hash_token(plaintext)}).first()
    if token is None:
        return None
    now = utcnow()
    if token.revoked_at is not None or not token.is_active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    due = (
        token.last_used_at is None
        or (now - token.last_used_at).total_seconds() > TOUCH_EVERY_SECONDS
    )
    actor = Actor.for_token(
        token.user_id, token.username, project_id=token.project_id, role=token.role
    )
    return TokenUse(actor, token.id, due)


def touch(session: Session, token_id: int) -> None:
    """Record that a token was used now (bookkeeping, not a trail event)."""
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))


def authenticate(session: Session, plaintext: str) -> Actor | None:
    """The actor a bearer token stands for, or ``None`` (see :func:`lookup`). Records
    ``last_used_at`` at most once a minute."""
    use = lookup(session, plaintext)
    if use is None:
        return None
    if use.touch_due:
        touch(session, use.token_id)
    return use.actor
