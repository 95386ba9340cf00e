"""User and membership use cases. Services take ``session`` and never commit."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import Membership, User
from labelloop.accounts.policy import require, require_admin
from labelloop.accounts.roles import Permission, Role, allows
from labelloop.errors import Conflict, NotFound, ValidationFailed
from labelloop.identifiers import USERNAME, USERNAME_RULE, login_key, normal_username, problem
from labelloop.projects.validation import Violation

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def check_password(user: User, password: str) -> bool:
    if not user.password_hash:
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def prepare_sign_in() -> None:
    """Make the dummy hash now (a server calls this at start), so that not even the
    first sign-in of an unknown name costs a second hash."""
    _dummy_hash()


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password with the same parameters as real ones: verified in
    place of a missing hash, so a sign-in costs the same whether or not the user
    exists or has a password."""
    return _hasher.hash(secrets.token_urlsafe(32))


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this name and password, else ``None``.

    The name is matched in its NFKC, trimmed form, and case-insensitively when that
    finds exactly one user (:func:`labelloop.identifiers.login_key`). Exactly one
    argon2 verification runs whatever the outcome (against a dummy hash for unknown
    users and users without a password), so the time taken does not tell whether the
    account exists.
    """
    name = normal_username(username)
    found = session.scalars(
        select(User)
        .where(or_(User.username == name, func.lower(User.username) == login_key(name)))
        .limit(5)
    ).all()
    exact = [u for u in found if u.username == name]
    # accounts that differ only in letter case: the one that can sign in (imports
    # create password-less accounts under any spelling their files use)
    can = [u for u in found if u.password_hash]
    user = exact[0] if exact else (can[0] if len(can) == 1 else None)
    stored = user.password_hash if user is not None and user.password_hash else None
    ok: bool
    try:
        ok = _hasher.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        ok = False
    if user is None or stored is None or not user.is_active or not ok:
        return None
    return user


def check_username(session: Session, username: str) -> str:
    """The username an administrator typed, normalised and checked: the documented
    character set (:data:`labelloop.identifiers.USERNAME_RULE`) and no other account
    with the same name in any letter case. ValidationFailed / Conflict name the field."""
    name = normal_username(username)
    if not USERNAME.fullmatch(name):
        raise ValidationFailed(
            f"username {name!r} is not allowed: {USERNAME_RULE}",
            [Violation("username", "invalid", USERNAME_RULE)],
        )
    taken = session.scalar(select(User.username).where(func.lower(User.username) == name.lower()))
    if taken is not None:
        raise Conflict(f"user {taken!r} already exists")
    return name


def _public(user: User) -> dict[str, object]:
    return {
        "username": user.username,
        "email": user.email,
        "is_admin": user.is_admin,
        "is_active": user.is_active,
    }


def create_user(
    session: Session,
    *,
    actor: Actor,
    username: str,
    email: str | None = None,
    password: str | None = None,
    is_admin: bool = False,
    display_name: str | None = None,
) -> User:
    require_admin(actor)
    username = check_username(session, username)
    user = User(
        username=username,
        email=email,
        display_name=display_name,
        password_hash=hash_password(password) if password else None,
        is_admin=is_admin,
    )
    session.add(user)
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="user.create",
        entity_type="user",
        entity_id=user.id,
        after=_public(user),
    )
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def list_users(session: Session) -> Sequence[User]:
    return session.scalars(select(User).order_by(User.username)).all()


def ensure_users(
    session: Session, *, actor: Actor, usernames: set[str], project_id: int
) -> dict[str, int]:
    """Ids of the named users, creating password-less annotator accounts (with an
    ``annotator`` membership in the project) for names not seen before. Used by imports.

    An existing account becomes the project's annotator only through the operator (a
    system actor: ``labelloop import``); for a user (a lead's upload) it must already
    hold a role in the project that may annotate, else ValidationFailed names it, so an
    import cannot draw outsiders, other projects' people or administrators into the
    project. Every new membership is a ``membership.grant`` event."""
    found: dict[str, int] = {}
    names = sorted(usernames)
    bad = [(n, why) for n in names if (why := problem(n)) is not None]
    if bad:
        raise ValidationFailed(
            f"annotator name {bad[0][0]!r} {bad[0][1]}",
            [Violation("annotator", "invalid", f"{n!r}: {why}") for n, why in bad[:50]],
        )
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        for uid, name in session.execute(
            select(User.id, User.username).where(User.username.in_(chunk))
        ):
            found[name] = uid
    # one flush for all new accounts (a multi-row INSERT), then one event per account
    created = [
        User(username=name, email=name if "@" in name else None)
        for name in names
        if name not in found
    ]
    if created:
        session.add_all(created)
        session.flush()
    for user in created:
        found[user.username] = user.id
        trail.service.append(
            session,
            actor=actor.name,
            action="user.create",
            entity_type="user",
            entity_id=user.id,
            project_id=project_id,
            after=_public(user),
        )
    roles: dict[int, set[Role]] = {}
    for uid, role in session.execute(
        select(Membership.user_id, Membership.role).where(Membership.project_id == project_id)
    ):
        roles.setdefault(uid, set()).add(Role(role))
    new_ids = {user.id for user in created}
    if not actor.system:
        strangers = [
            n
            for n in names
            if found[n] not in new_ids
            and not allows(roles.get(found[n], set()), Permission.ANNOTATE)
        ]
        if strangers:
            raise ValidationFailed(
                f"annotator {strangers[0]!r} is an existing account with no role in this "
                "project that may annotate; grant it one first (or import as the operator)",
                [Violation("annotator", "not_a_member", repr(n)) for n in strangers[:50]],
            )
    granted = [
        Membership(user_id=found[n], project_id=project_id, role=Role.ANNOTATOR.value)
        for n in names
        if Role.ANNOTATOR not in roles.get(found[n], set())
    ]
    session.add_all(granted)
    session.flush()
    by_id = {uid: name for name, uid in found.items()}
    for membership in granted:
        trail.service.append(
            session,
            actor=actor.name,
            action="membership.grant",
            entity_type="membership",
            entity_id=membership.id,
            project_id=project_id,
            after={"username": by_id[membership.user_id], "role": Role.ANNOTATOR.value},
        )
    return found


def grant(
    session: Session, *, actor: Actor, username: str, project_id: int, role: Role
) -> Membership:
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project_id)
    user = get_user(session, username)
    existing = session.scalar(
        select(Membership).where(
            Membership.user_id == user.id,
            Membership.project_id == project_id,
            Membership.role == role.value,
        )
    )
    if existing is not None:
        return existing
    membership = Membership(user_id=user.id, project_id=project_id, role=role.value)
    session.add(membership)
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="membership.grant",
        entity_type="membership",
        entity_id=membership.id,
        project_id=project_id,
        after={"username": username, "role": role.value},
    )
    return membership


def revoke(session: Session, *, actor: Actor, username: str, project_id: int, role: Role) -> None:
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project_id)
    user = get_user(session, username)
    membership = session.scalar(
        select(Membership).where(
            Membership.user_id == user.id,
            Membership.project_id == project_id,
            Membership.role == role.value,
        )
    )
    if membership is None:
        raise NotFound(f"{username} has no {role.value} role in project {project_id}")
    session.delete(membership)
    trail.service.append(
        session,
        actor=actor.name,
        action="membership.revoke",
        entity_type="membership",
        entity_id=membership.id,
        project_id=project_id,
        before={"username": username, "role": role.value},
    )
    session.flush()
